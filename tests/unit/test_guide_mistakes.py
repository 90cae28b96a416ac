"""One test per mistake of the original guide (DESIGN.md 1-6, 10-23, 25) that the postgres
and mlflow roles fix. Each fails if the mistake is reintroduced in a template or default."""

import base64
import fnmatch
import json
import re

import pytest
from sqlalchemy.engine import make_url

from manifests import load_dir
from test_manifests import (CUSTOM_DB_PASSWORD, IMAGE_REF, container, env_of, expand,
                            find, pod_spec, render, resolved_env, run_render, secret_value, _OUT, VARIANTS)

VARIANT_NAMES = sorted(VARIANTS)


def mlflow_docs(variant="defaults"):
    return render(variant)["mlflow"]


def postgres_docs(variant="defaults"):
    return render(variant)["postgres"]


def server(variant="defaults"):
    return container(find(mlflow_docs(variant), "Deployment", "mlflow"))


def server_env(variant="defaults"):
    return resolved_env(mlflow_docs(variant), server(variant))


def argv(c, env):
    """command + args as the kubelet passes them (after $(VAR) expansion)."""
    return [expand(a, env) for a in c.get("command", []) + c.get("args", [])]


def uri(variant="defaults"):
    return secret_value(mlflow_docs(variant), "mlflow-db", "backend-store-uri")


def all_workload_containers(variant):
    docs = postgres_docs(variant) + mlflow_docs(variant)
    return [(w, c) for w in docs if w["kind"] in ("Deployment", "Job", "CronJob")
            for c in pod_spec(w)["containers"]]


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_01_no_shell_style_variables_in_exec_form(variant):
    """${VAR} in an exec-form command is never expanded; $(VAR) must name a defined env var."""
    for workload, c in all_workload_containers(variant):
        defined = {e["name"] for e in c.get("env", [])}
        for arg in c.get("command", []) + c.get("args", []):
            assert not re.search(r"(?<!\$)\$\{", arg), (workload["metadata"]["name"], arg)
            for ref in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
                assert ref in defined, (workload["metadata"]["name"], ref)
    env = env_of(server(variant))
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "backend-store-uri"}
    port = str(VARIANTS[variant].get("mlflow_port", 5000))
    assert argv(server(variant), server_env(variant))[:5] == ["server", "--host", "0.0.0.0", "--port", port]


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_02_uri_scheme_is_postgresql_with_a_driver(variant):
    assert uri(variant).startswith("postgresql+")
    assert make_url(uri(variant)).get_backend_name() == "postgresql"


def test_03_password_is_percent_encoded():
    u = make_url(uri("custom"))
    assert u.password == CUSTOM_DB_PASSWORD
    assert u.username == "tracker" and u.database == "tracking" and u.host == "postgres.ml-team.svc" and u.port == 5432
    # the generated default password also survives the round trip
    docs = postgres_docs("defaults")
    pg_password = secret_value(docs, "postgres", "password")
    assert make_url(uri("defaults")).password == pg_password


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_04_database_is_created_and_owned_by_the_mlflow_user(variant):
    pg = postgres_docs(variant)
    env = resolved_env(pg, container(find(pg, "Deployment", "postgres")))
    u = make_url(uri(variant))
    assert env["POSTGRES_DB"] == u.database
    assert env["POSTGRES_USER"] == u.username
    assert env["POSTGRES_PASSWORD"] == u.password


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_05_postgres_data_is_on_a_persistent_volume(variant):
    pg = postgres_docs(variant)
    deployment = find(pg, "Deployment", "postgres")
    c = container(deployment)
    pgdata = env_of(c)["PGDATA"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    [(path, volume)] = [(p, v) for p, v in mounts.items() if pgdata.startswith(p.rstrip("/") + "/")]
    claim = {v["name"]: v for v in pod_spec(deployment)["volumes"]}[volume]["persistentVolumeClaim"]["claimName"]
    find(pg, "PersistentVolumeClaim", claim)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_06_artifacts_are_proxied_to_a_persistent_volume(variant):
    docs = mlflow_docs(variant)
    c = server(variant)
    args = argv(c, server_env(variant))
    assert "--serve-artifacts" in args
    destination = args[args.index("--artifacts-destination") + 1]
    for workload, cc in all_workload_containers(variant):
        assert not any("--default-artifact-root" in a for a in cc.get("args", []) + cc.get("command", []))
        assert "MLFLOW_DEFAULT_ARTIFACT_ROOT" not in env_of(cc)
    deployment = find(docs, "Deployment", "mlflow")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    [volume] = [v for p, v in mounts.items() if destination == p or destination.startswith(p.rstrip("/") + "/")]
    claim = {v["name"]: v for v in pod_spec(deployment)["volumes"]}[volume]["persistentVolumeClaim"]["claimName"]
    find(docs, "PersistentVolumeClaim", claim)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_07_images_are_not_pulled_again(variant):
    for workload, c in all_workload_containers(variant):
        assert c["imagePullPolicy"] == "IfNotPresent"
        assert not c["image"].endswith(":latest") and ":" in c["image"].rsplit("/", 1)[-1]
    assert server(variant)["image"] == IMAGE_REF


def allowed(hosts, host):
    """MLflow's Host-header rule (fnmatch when the pattern has '*', else equality)."""
    return any(fnmatch.fnmatch(host, p) if "*" in p else host == p for p in hosts)


def test_10_allowed_hosts_cover_nodes_service_ingress_and_localhost():
    hosts = server_env("custom")["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for good in ("192.168.1.20:31500", "k3s-node-2.lan:31500", "mlflow.ml-team.svc.cluster.local:8080",
                 "mlflow:8080", "mlflow.home.lan", "mlflow.home.lan:443", "localhost:8080", "localhost",
                 "127.0.0.1:31500", "mlflow.example.org"):
        assert allowed(hosts, good), good
    for bad in ("evil.example", "192.168.1.21:31500", "mlflow.home.lan.evil.example"):
        assert not allowed(hosts, bad), bad
    assert "*" not in hosts
    default = server_env("defaults")["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert allowed(default, "localhost:30001") and allowed(default, "mlflow.mlflow.svc:5000")
    # security settings travel as env vars: the CLI refuses them together with gunicorn
    for flag in ("--allowed-hosts", "--cors-allowed-origins", "--disable-security-middleware", "--x-frame-options"):
        assert flag not in server("defaults")["args"]
    assert server_env("custom")["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"] == "https://mlflow.example.org"


def test_10_node_addresses_default_to_the_inventory(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"k3s_cluster": {"children": {
        "k3s_server": {"hosts": {"node-a": {"ansible_host": "10.1.2.3", "ansible_connection": "local"}}},
        "k3s_agent": {"hosts": {"node-b": {"ansible_connection": "local"}}}}}}))
    proc = run_render(VARIANTS["defaults"], tmp_path / "out", inventory=inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    docs = load_dir(tmp_path / "out" / "mlflow")
    hosts = resolved_env(docs, container(find(docs, "Deployment", "mlflow")))["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert allowed(hosts, "10.1.2.3:30001") and allowed(hosts, "node-b:30001")


def test_11_migration_job_runs_db_upgrade_before_the_deployment_and_follows_the_image():
    docs = mlflow_docs()
    kinds = [d["kind"] for d in docs]
    assert kinds.index("Job") < kinds.index("Deployment")
    job = find(docs, "Job")
    c = container(job)
    code = " ".join(c["command"])
    assert "mlflow.db" in code and "'upgrade'" in code and "MLFLOW_BACKEND_STORE_URI" in code
    assert uri() not in json.dumps(job), "the URI must not be in argv"
    assert c["image"] == IMAGE_REF
    assert pod_spec(job)["restartPolicy"] == "Never"
    # same image, same name (a completed Job is left alone); new image, new Job
    out = _OUT / "new-image"
    import shutil
    shutil.copytree(render("defaults")["dir"] / "credentials", out / "credentials")
    proc = run_render(dict(VARIANTS["defaults"], mlflow_image_ref="mlflow-k3s/mlflow:3.18.0-fedcba987654"), out)
    assert proc.returncode == 0, proc.stdout[-3000:]
    new_job = find(load_dir(out / "mlflow"), "Job")
    assert new_job["metadata"]["name"] != job["metadata"]["name"]
    assert re.fullmatch(r"mlflow-db-upgrade-[0-9a-f]{10}", new_job["metadata"]["name"])


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_12_server_binds_all_interfaces(variant):
    args = argv(server(variant), server_env(variant))
    assert args[args.index("--host") + 1] == "0.0.0.0"


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_13_probes_resources_non_root_read_only(variant):
    for workload, c in all_workload_containers(variant):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), name
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts or workload["kind"] == "CronJob", name
        if workload["kind"] == "Deployment":
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in c, (name, probe)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server(variant)[probe]["httpGet"] == {"path": "/health", "port": "http"}


@pytest.mark.parametrize("variant,driver", [("defaults", "psycopg2"), ("custom", "psycopg")])
def test_14_uri_names_the_driver(variant, driver):
    assert make_url(uri(variant)).drivername == f"postgresql+{driver}"


def test_15_space_is_encoded_as_percent_20():
    raw = uri("custom")
    assert "%20" in raw and "+x@" not in raw


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_16_no_postgres_scheme_and_no_uri_outside_its_secret(variant):
    docs = postgres_docs(variant) + mlflow_docs(variant)
    text = json.dumps(docs)
    assert "postgres://" not in text
    password = make_url(uri(variant)).password
    for doc in docs:
        if doc["kind"] != "Secret":
            assert password not in json.dumps(doc), doc["metadata"]["name"]


def test_17_telemetry_off_by_default():
    env = server_env("defaults")
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "true"
    assert resolved_env(mlflow_docs(), container(find(mlflow_docs(), "Job")))["MLFLOW_DISABLE_TELEMETRY"] == "true"
    on = server_env("custom")
    assert on["MLFLOW_DISABLE_TELEMETRY"] == "false" and "DO_NOT_TRACK" not in on


def test_18_gunicorn_by_default_uvicorn_selectable():
    env = server_env("defaults")
    assert "MLFLOW_GUNICORN_OPTS" in env and "MLFLOW_UVICORN_OPTS" not in env
    args = server("defaults")["args"]
    assert args[args.index("--workers") + 1] == "4"
    custom = server_env("custom")
    assert "MLFLOW_GUNICORN_OPTS" not in custom
    assert custom["MLFLOW_UVICORN_OPTS"] == "--timeout-keep-alive 10"
    cargs = server("custom")["args"]
    assert cargs[cargs.index("--workers") + 1] == "2"


def test_19_job_execution_off_by_default():
    assert server_env("defaults")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert server_env("custom")["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_20_pool_sized_to_workers_and_max_connections(variant):
    env = server_env(variant)
    pool, overflow = int(env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"]), int(env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"])
    assert pool >= 1 and overflow >= 1, "0 is silently ignored by MLflow"
    args = server(variant)["args"]
    workers = int(args[args.index("--workers") + 1])
    replicas = find(mlflow_docs(variant), "Deployment", "mlflow")["spec"]["replicas"]
    pg_args = container(find(postgres_docs(variant), "Deployment", "postgres"))["args"]
    max_connections = int([a.split("=", 1)[1] for a in pg_args if a.startswith("max_connections=")][0])
    assert replicas * workers * (pool + overflow) <= max_connections - 10


def test_21_gunicorn_timeout_allows_long_uploads():
    opts = server_env("defaults")["MLFLOW_GUNICORN_OPTS"].split()
    assert int(opts[opts.index("--timeout") + 1]) >= 300


def test_22_replicas_need_shared_artifact_storage():
    """Several replicas render only with ReadWriteMany (custom); RWO is refused (bad values test)."""
    docs = mlflow_docs("custom")
    assert find(docs, "Deployment", "mlflow")["spec"]["replicas"] == 2
    assert find(docs, "PersistentVolumeClaim", "mlflow-artifacts")["spec"]["accessModes"] == ["ReadWriteMany"]
    default = find(mlflow_docs(), "Deployment", "mlflow")
    assert default["spec"]["strategy"]["type"] == "Recreate"
    from test_manifests import BAD_VALUES
    assert ({"mlflow_replicas": 2}, "ReadWriteOnce") in BAD_VALUES


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_23_tracking_uri_is_the_server_itself(variant):
    """Set as DESIGN 23 proposed. L3b shows what it does and does not fix: model-version files
    with a proxied source are served; a runs:/ source still fails (an MLflow limitation)."""
    port = VARIANTS[variant].get("mlflow_port", 5000)
    assert server_env(variant)["MLFLOW_TRACKING_URI"] == f"http://localhost:{port}"


def test_25_webhook_key_is_one_fernet_key_kept_in_a_secret():
    env_ref = env_of(server())["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"]
    assert env_ref["name"] == "mlflow-server"
    key = server_env()["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"]
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert env_of(server())["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-server"
