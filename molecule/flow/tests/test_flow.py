"""The converged flow scenario: site.yml on a k3s server and agent (k3s STAND-IN) with the
STAND-IN cluster of tests/flow/standin_cluster.py running what kubernetes.core applied."""
import json
import os
import stat
import subprocess

import pytest
import requests
import testinfra

FLOW = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
CLUSTER = os.path.join(FLOW, "standin-cluster")
STORAGE = "/var/lib/rancher/k3s/storage"


@pytest.fixture(params=["flow-mol-server", "flow-mol-agent"])
def node(request):
    """The Molecule hosts, reached with `docker exec` (the server's ansible_host is the
    controller's loopback, where its NodePort is published, so the Ansible backend cannot)."""
    return testinfra.get_host("docker://" + request.param)


def events():
    with open(os.path.join(CLUSTER, "events.jsonl")) as f:
        return [json.loads(line) for line in f]


def pods():
    with open(os.path.join(CLUSTER, "pods.json")) as f:
        return json.load(f)


def url():
    with open(os.path.join(FLOW, "nodeport")) as f:
        return "http://127.0.0.1:%s" % f.read().strip()


def client_env():
    """The client file site.yml wrote, sourced as a user would on a laptop."""
    env_file = os.path.join(FLOW, "credentials", "mlflow.env")
    out = subprocess.run(["bash", "-c", "source %s && env -0" % env_file], env={}, capture_output=True,
                         check=True).stdout.decode()
    return dict(line.split("=", 1) for line in out.split("\0") if line.startswith("MLFLOW_"))


def login():
    env = client_env()
    return env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]


@pytest.mark.parametrize("name", ["k3s-token", "k3s-agent-token", "kubeconfig.yaml", "postgres-password", "mlflow-webhook-key",
                                  "mlflow-flask-secret-key", "mlflow-admin-password", "mlflow.env"])
def test_generated_credentials_are_private_on_the_controller(name):
    mode = os.stat(os.path.join(FLOW, "credentials", name)).st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_database_and_mlflow_run_on_different_nodes_and_are_ready():
    running = pods()
    db, server = running["Deployment/mlflow/postgres"], running["Deployment/mlflow/mlflow"]
    assert db["ready"] and server["ready"]
    assert {db["node"], server["node"]} == {"flow-mol-server", "flow-mol-agent"}
    assert server["restarts"] == 0


def test_migration_job_completed_before_the_server_started():
    seen = events()
    done = [e["t"] for e in seen if e["event"] == "job-complete" and e["name"].startswith("mlflow-db-upgrade-")]
    started = [e["t"] for e in seen if e["event"] == "pod-started" and e["name"] == "mlflow"]
    assert done and started and done[0] < started[0]
    assert not [e for e in seen if e["event"] == "pod-error"], "a pod waited for an image (ErrImagePull)"


def test_every_node_holds_the_pinned_image_the_deployment_runs(node):
    image = pods()["Deployment/mlflow/mlflow"]["image"]
    out = node.check_output("k3s ctr -n k8s.io images ls name==%s" % image)
    assert image in out and "io.cri-containerd.pinned=pinned" in out


def test_artifacts_of_the_verify_run_are_on_the_node_holding_the_volume(node):
    holder = pods()["Deployment/mlflow/mlflow"]["node"]
    found = node.run("find %s -path '*_mlflow_mlflow-artifacts/*' -name smoke.txt" % STORAGE).stdout.split()
    if node.backend.name == holder:
        assert found, "verify.yml's artifact is not on the artifacts volume"
        assert node.file(found[0]).content_string.startswith("logged by verify.yml at ")
    else:
        assert not found


def test_mlflow_answers_on_the_node_port_and_refuses_unknown_hosts():
    assert requests.get(url() + "/health", timeout=10).text == "OK"
    api = url() + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=_smoke"
    assert requests.get(api, auth=login(), timeout=10).json()["experiment"]["name"] == "_smoke"
    assert requests.get(api, auth=login(), headers={"Host": "evil.example"}, timeout=10).status_code == 403


def test_anonymous_requests_are_refused_and_the_client_file_logs_in():
    assert client_env()["MLFLOW_TRACKING_URI"] == url()
    api = url() + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(api, timeout=10).status_code == 401
    assert requests.get(api, auth=("admin", "not-the-password"), timeout=10).status_code == 401
    assert requests.get(api, auth=login(), timeout=10).status_code == 200


def test_smoke_runs_have_their_metric():
    api = url() + "/api/2.0/mlflow"
    experiment = requests.get(api + "/experiments/get-by-name?experiment_name=_smoke", auth=login(), timeout=10).json()
    runs = requests.post(api + "/runs/search", json={"experiment_ids": [experiment["experiment"]["experiment_id"]]},
                         auth=login(), timeout=10).json()["runs"]
    # converge and idempotence each logged one
    assert len(runs) >= 2
    assert all(r["data"]["metrics"][0]["value"] == 42.0 for r in runs)
