"""The MLflow image really serves: started with environment variables only (no
command override) against a real PostgreSQL, with a password full of special
characters, it answers /health and creates an experiment through the REST API.

PostgreSQL is mlflow-k3s-test/postgres:15, a STAND-IN for the official postgres:15
image (Debian's postgresql-15 behind an entrypoint honouring the same variables),
because no registry is reachable here. The MLflow image is the role's real build
(tests/runtime/build_image.yml). MLFLOW_IMAGE_FLAVORS selects flavors (default:
full,slim).
"""
import importlib.util
import os
import sys
import uuid

import pytest
import requests

from images import ROOT, build_mlflow_image, build_naive_image
from stack import Stack

sys.path.insert(0, os.path.join(ROOT, "bench"))
from endpoints import check, served  # noqa: E402  (bench/endpoints.py)

PASSWORD = "p@ss:w/rd %?#[]' \"é€ü\\+"
POSTGRES_IMAGE = "mlflow-k3s-test/postgres:15"
FLAVORS = [f for f in os.environ.get("MLFLOW_IMAGE_FLAVORS", "full,slim").split(",") if f]


def _postgres_uri(spec):
    # The collection's own filter, loaded from its file (the test runs outside Ansible).
    path = os.path.join(ROOT, "plugins", "filter", "postgres_uri.py")
    module_spec = importlib.util.spec_from_file_location("postgres_uri_filter", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.FilterModule().filters()["postgres_uri"](spec)


@pytest.fixture(scope="module", params=FLAVORS)
def image(request):
    ref, seconds = build_mlflow_image(request.param)
    print("\n%s image %s ready in %.0f s" % (request.param, ref, seconds))
    return ref


@pytest.fixture(scope="module")
def postgres_stack():
    with Stack("mlflowimg-rt") as stack:
        stack.start("postgres", POSTGRES_IMAGE, aliases=["db"], env={
            "POSTGRES_USER": "mlflow", "POSTGRES_PASSWORD": PASSWORD, "POSTGRES_DB": "mlflowdb",
            "PGDATA": "/var/lib/postgresql/data/pgdata"},
            volumes={stack.volume("pgdata"): {"bind": "/var/lib/postgresql/data", "mode": "rw"}})
        stack.wait_exec("postgres", ["pg_isready", "-h", "127.0.0.1", "-U", "mlflow", "-d", "mlflowdb"])
        yield stack


SERVERS = {
    # MLflow's default server (uvicorn); one worker and no job runner keep it small.
    "uvicorn": {"MLFLOW_WORKERS": "1"},
    # Gunicorn (DESIGN note 18) must be in the image: MLflow's own env var selects it.
    "gunicorn": {"MLFLOW_GUNICORN_OPTS": "--workers 1 --timeout 120"},
}


def _new_database(stack, label):
    """(name, URI) of a new database for one server."""
    database = "mlflow_%s_%s" % (label, uuid.uuid4().hex[:6])
    stack.exec("postgres", ["psql", "-U", "mlflow", "-d", "mlflowdb", "-c", "CREATE DATABASE %s" % database])
    return database, _postgres_uri({"user": "mlflow", "password": PASSWORD, "host": "db", "database": database})


def test_default_image_serves_what_the_naive_image_serves_at_half_its_size(postgres_stack):
    """Issue 14: the role's default image serves every endpoint that the naive image
    (`pip install mlflow psycopg2-binary` on the same base) serves, run the same way
    (`mlflow server`, one worker, the same database and settings), and is at most half
    its size."""
    import docker

    stack = postgres_stack
    images = {"ours": build_mlflow_image()[0], "naive": build_naive_image()}
    statuses, sizes = {}, {}
    for label, image in images.items():
        name = "parity-%s" % label
        stack.start(name, image, ports=[5000], env={
            "MLFLOW_BACKEND_STORE_URI": _new_database(stack, label)[1],
            "MLFLOW_WORKERS": "1",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_ARTIFACTS_DESTINATION": "/tmp/mlartifacts",
        })
        stack.wait_http(stack.url(name, 5000) + "/health", name=name, timeout=240)
        statuses[label] = check(stack.url(name, 5000))
        sizes[label] = docker.from_env().images.get(image).attrs["Size"]
        stack.stop(name)
    print("\nsizes (MB): %s; ours/naive %.2f" % ({k: round(v / 1e6) for k, v in sizes.items()}, sizes["ours"] / sizes["naive"]))
    missing = set(served(statuses["naive"])) - set(served(statuses["ours"]))
    assert not missing, statuses
    assert sizes["ours"] <= 0.5 * sizes["naive"], sizes


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_image_serves_from_env_only(image, postgres_stack, server):
    stack = postgres_stack
    database, uri = _new_database(stack, server)
    assert PASSWORD not in uri
    name = "mlflow-%s-%s" % (server, image.rsplit("-", 1)[-1])
    stack.start(name, image, ports=[5000], env=dict(SERVERS[server], **{
        "MLFLOW_BACKEND_STORE_URI": uri,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_ARTIFACTS_DESTINATION": "/home/mlflow/artifacts",
    }))
    container = stack.container(name)
    # No command override: the image's entrypoint and CMD start the server.
    assert container.attrs["Config"]["Cmd"] == ["server"]
    base = stack.url(name, 5000)
    stack.wait_http(base + "/health", name=name, timeout=240)

    created = requests.post(base + "/api/2.0/mlflow/experiments/create",
                            json={"name": "runtime-%s" % server}, timeout=30)
    assert created.status_code == 200, created.text
    experiment_id = created.json()["experiment_id"]
    fetched = requests.get(base + "/api/2.0/mlflow/experiments/get-by-name",
                           params={"experiment_name": "runtime-%s" % server}, timeout=30)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["experiment"]["experiment_id"] == experiment_id

    # The experiment is in PostgreSQL, not in a local SQLite file.
    rows = stack.exec("postgres", ["psql", "-U", "mlflow", "-d", database, "-tAc",
                                   "SELECT name FROM experiments WHERE experiment_id = %d" % int(experiment_id)])
    assert rows.output.decode().strip() == "runtime-%s" % server

    # Runs as the image's non-root user.
    uid = stack.exec(name, ["id", "-u"]).output.decode().strip()
    assert uid == "10001"
    top = container.top(ps_args="-o user,pid,args")
    assert all(row[0] != "root" for row in top["Processes"]), top

    logs = stack.logs(name)
    assert PASSWORD not in logs

    # dumb-init forwards SIGTERM: the server exits by itself, not by Docker's SIGKILL after
    # the timeout (exit code 137). Not timed: a loaded machine stops it slower.
    seconds = stack.stop(name, timeout=60)
    container.reload()
    assert not container.attrs["State"]["OOMKilled"]
    assert container.attrs["State"]["ExitCode"] != 137, "killed after %.0f s: %s" % (seconds, stack.logs(name)[-2000:])


def test_image_settings(image):
    import docker

    config = docker.from_env().images.get(image).attrs["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["MLFLOW_HOST"] == "0.0.0.0"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "true"
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"][-1].endswith("/mlflow") and config["Cmd"] == ["server"]
    assert not any(key.startswith(("MLFLOW_BACKEND", "POSTGRES")) for key in env), env
    assert image.rsplit(":", 1)[1] != "latest"


def test_listening_sockets_get_tcp_nodelay(image):
    """The image's tcp_nodelay.pth sets TCP_NODELAY on every TCP listener (uvicorn's
    supervisor socket included), so accepted connections don't wait on Nagle's algorithm."""
    import docker

    probe = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen();"
             "print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))")
    out = docker.from_env().containers.run(image, entrypoint=["/opt/mlflow/bin/python", "-c", probe],
                                           remove=True, network_mode="none")
    assert out.decode().strip() != "0"
