"""L3b with artifacts in an S3-compatible store (issue 12): the workloads the roles render
with mlflow_artifacts_destination=s3://..., run as Docker containers (kube_to_docker.py)
with the real MLflow image, the PostgreSQL stand-in of test_stack_runtime.py, and a
STAND-IN for the store: moto's server mode (moto[server], from its own venv, see
tests/requirements-moto.txt) on the test's Docker network. moto checks signatures and IAM
policies once its first unauthenticated actions are used up (INITIAL_NO_AUTH_ACTION_COUNT),
so the keys the server gets must be the ones the store issued, as with MinIO or AWS.
Not covered: the store's own durability, TLS to the store, AWS regions.
"""

import copy
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT / "tests" / "runtime"), str(ROOT / "tests")]

from images import build_mlflow_image  # noqa: E402
from stack import Stack  # noqa: E402

from kube_to_docker import KubeToDocker, find  # noqa: E402
from test_stack_runtime import render  # noqa: E402

MOTO_VENV = ROOT / ".cache" / "moto-venv"
BUCKET = "lab-artifacts"
PREFIX = "mlflow"
# What the test asks of the store: an IAM user whose key may use the bucket, then the
# bucket. These are the unauthenticated actions moto allows; every later request is signed.
SETUP = """
import json, sys, boto3
kw = dict(endpoint_url="http://127.0.0.1:5000", region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="mlflow")
key = iam.create_access_key(UserName="mlflow")["AccessKey"]
iam.put_user_policy(UserName="mlflow", PolicyName="bucket", PolicyDocument=json.dumps({
    "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
boto3.client("s3", **kw).create_bucket(Bucket=sys.argv[1])
print(json.dumps([key["AccessKeyId"], key["SecretAccessKey"]]))
"""
LIST = """
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:5000", region_name="us-east-1",
                  aws_access_key_id=sys.argv[1], aws_secret_access_key=sys.argv[2])
pages = s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[3])
print(json.dumps([o["Key"] for page in pages for o in page.get("Contents", [])]))
"""


def moto_python():
    """The moto venv's interpreter and the Python installation it points to, both mounted
    read-only into a Debian 12 container at the same paths."""
    if not (MOTO_VENV / ".installed").exists():
        pytest.fail("the S3 stand-in is not installed: run `make .cache/moto-venv/.installed` (make stack does)")
    home = next(line.split("=", 1)[1].strip() for line in (MOTO_VENV / "pyvenv.cfg").read_text().splitlines()
                if line.startswith("home"))
    base = str(Path(home).parent)
    return str(MOTO_VENV / "bin" / "python"), {base: {"bind": base, "mode": "ro"}, str(MOTO_VENV): {"bind": str(MOTO_VENV), "mode": "ro"}}


@pytest.fixture(scope="module")
def s3_deployed(tmp_path_factory):
    subprocess.run(["bash", str(ROOT / "tests" / "images" / "build.sh")], check=True, capture_output=True)
    image_ref, _seconds = build_mlflow_image()
    python, mounts = moto_python()
    with Stack("mlflowk3s-l3s3") as stack:
        stack.start("s3", "mlflow-k3s-test/python-base:bookworm", entrypoint=[python, "-m", "moto.server", "-H", "0.0.0.0", "-p", "5000"],
                    env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"}, volumes=mounts)
        stack.wait_exec("s3", [python, "-c", "import socket; socket.create_connection(('127.0.0.1', 5000), 1)"], timeout=60)
        setup = stack.exec("s3", [python, "-c", SETUP, BUCKET])
        assert setup.exit_code == 0, setup.output.decode()[-2000:]
        key_id, secret = json.loads(setup.output.decode().strip().splitlines()[-1])

        out = tmp_path_factory.mktemp("manifests")
        s3_vars = dict(mlflow_artifacts_destination=f"s3://{BUCKET}/{PREFIX}", mlflow_s3_endpoint_url="http://s3:5000",
                       mlflow_s3_addressing_style="path", mlflow_s3_region="us-east-1", mlflow_s3_access_key_id=key_id,
                       mlflow_s3_secret_access_key=secret)
        docs = render(out, image_ref, **s3_vars, mlflow_replicas=2, mlflow_gc_older_than="1s")
        kube = KubeToDocker(stack, docs)
        db = find(docs, "Deployment", "postgres")
        kube.run(db, "db-pod")
        stack.wait_exec("db-pod", db["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"], timeout=120)

        job = find(docs, "Job")
        kube.run(job, "migration-job")
        result = stack.container("migration-job").wait(timeout=300)
        assert result["StatusCode"] == 0, stack.logs("migration-job")[-3000:]
        assert f"Bucket {BUCKET} answers and takes writes." in stack.logs("migration-job")

        deployment = find(docs, "Deployment", "mlflow")
        kube.run(deployment, "mlflow-pod")
        url = stack.url("mlflow-pod", 5000)
        stack.wait_http(url + "/health", name="mlflow-pod", timeout=240)
        auth = ("admin", kube.secret_value("mlflow-server", "admin-password"))
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MLFLOW_TRACKING_USERNAME", auth[0])
            env.setenv("MLFLOW_TRACKING_PASSWORD", auth[1])
            # as mlflow.env sets them with S3: without, MLflow 3.17's client downloads by a
            # presigned URL of the store (http://s3:5000 here, unreachable from the host)
            env.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
            env.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "false")
            yield {"stack": stack, "kube": kube, "docs": docs, "url": url, "python": python, "keys": (key_id, secret),
                   "image": image_ref, "state": str(out / "credentials"), "s3_vars": s3_vars}


def bucket_keys(deployed):
    key_id, secret = deployed["keys"]
    out = deployed["stack"].exec("s3", [deployed["python"], "-c", LIST, key_id, secret, BUCKET])
    assert out.exit_code == 0, out.output.decode()[-2000:]
    return json.loads(out.output.decode().strip().splitlines()[-1])


def check_job(deployed, name, env_changes):
    """The rendered migration Job (its bucket check first) with some of its env changed."""
    job = copy.deepcopy(find(deployed["docs"], "Job"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] not in env_changes] + \
        [{"name": k, "value": v} for k, v in env_changes.items()]
    stack = deployed["stack"]
    deployed["kube"].run(job, name)
    code = stack.container(name).wait(timeout=300)["StatusCode"]
    return code, stack.logs(name)


def test_with_s3_there_is_no_volume_and_replicas_roll(s3_deployed):
    docs = s3_deployed["docs"]
    assert [d for d in docs if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == "mlflow-artifacts"] == []
    deployment = find(docs, "Deployment", "mlflow")
    assert deployment["spec"]["replicas"] == 2 and "strategy" not in deployment["spec"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    # the keys come from the Secret, never as literal values
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-server", "key": "AWS_SECRET_ACCESS_KEY"}
    assert s3_deployed["keys"][1] not in json.dumps(deployment)


def test_proxied_artifacts_land_in_the_bucket_and_download(s3_deployed, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    mlflow.set_tracking_uri(s3_deployed["url"])
    experiment_id = mlflow.create_experiment(f"s3-{uuid.uuid4().hex[:8]}")
    payload = tmp_path / "weights.txt"
    payload.write_text("0.1 0.2 0.3\n" * 500)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("loss", 0.25)
        mlflow.log_artifact(str(payload), artifact_path="model")
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    keys = bucket_keys(s3_deployed)
    assert any(k.startswith(f"{PREFIX}/") and k.endswith(f"/{run.info.run_id}/artifacts/model/weights.txt") for k in keys), keys
    assert not any(k.endswith(".mlflow-k3s-write-check") for k in keys)  # the check cleans up
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="model/weights.txt", dst_path=str(tmp_path / "dl"))
    assert Path(path).read_text() == payload.read_text()
    assert s3_deployed["stack"].exec("mlflow-pod", ["find", "/mlflow", "-name", "weights.txt"]).output.decode().strip() == ""


def test_the_bucket_check_names_what_is_wrong_before_the_rollout(s3_deployed):
    code, log = check_job(s3_deployed, "check-missing", {"MLFLOW_ARTIFACTS_DESTINATION": "s3://no-such-bucket/x"})
    assert code != 0 and "there is no bucket no-such-bucket; create it first" in log, log[-2000:]
    code, log = check_job(s3_deployed, "check-endpoint", {"MLFLOW_S3_ENDPOINT_URL": "http://nothing-listens-here:9000"})
    assert code != 0 and "the endpoint does not answer" in log and "check mlflow_s3_endpoint_url" in log, log[-2000:]
    code, log = check_job(s3_deployed, "check-keys", {"AWS_SECRET_ACCESS_KEY": "not-the-secret-key"})
    assert code != 0 and "the store refused the credentials" in log, log[-2000:]


def test_gc_removes_a_deleted_run_and_its_objects(s3_deployed, tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(s3_deployed["url"])
    experiment_id = mlflow.create_experiment(f"gc-{uuid.uuid4().hex[:8]}")
    (tmp_path / "big.bin").write_bytes(b"x" * 100000)
    with mlflow.start_run(experiment_id=experiment_id) as gone:
        mlflow.log_artifact(str(tmp_path / "big.bin"))
    with mlflow.start_run(experiment_id=experiment_id) as kept:
        mlflow.log_artifact(str(tmp_path / "big.bin"))
    client = MlflowClient(s3_deployed["url"])
    client.delete_run(gone.info.run_id)
    assert any(f"/{gone.info.run_id}/" in k for k in bucket_keys(s3_deployed))

    time.sleep(2)  # mlflow_gc_older_than is 1s here
    kube, stack = s3_deployed["kube"], s3_deployed["stack"]
    kube.run(find(s3_deployed["docs"], "CronJob", "mlflow-gc"), "gc-job")
    code = stack.container("gc-job").wait(timeout=300)["StatusCode"]
    assert code == 0, stack.logs("gc-job")[-3000:]

    with pytest.raises(MlflowException):
        client.get_run(gone.info.run_id)
    assert client.get_run(kept.info.run_id).info.lifecycle_stage == "active"
    keys = bucket_keys(s3_deployed)
    assert not any(f"/{gone.info.run_id}/" in k for k in keys), keys
    assert any(f"/{kept.info.run_id}/" in k for k in keys), keys
    rows = stack.exec("db-pod", ["psql", "-U", "mlflow", "-d", "mlflow", "-tAc",
                                 f"select count(*) from runs where run_uuid = '{gone.info.run_id}'"], user="999")
    assert rows.output.decode().strip() == "0"
    assert requests.get(s3_deployed["url"] + "/health", timeout=10).status_code == 200


def test_a_lab_moved_from_its_volume_keeps_every_run_s_artifacts(s3_deployed, tmp_path_factory, tmp_path, monkeypatch):
    """playbooks/move_artifacts.yml's Job (the mlflow role's artifacts-move-job.yaml.j2, the
    volume mounted read-only) copies what a server on the volume stored; the server on S3
    then serves those runs' artifacts by their old mlflow-artifacts:/ URIs; a rerun copies
    nothing again."""
    import mlflow

    stack, state = s3_deployed["stack"], {"mlflow_k3s_state_dir": s3_deployed["state"]}
    # 1. the same lab before the move: MLflow on its volume, the same database
    volume_docs = render(tmp_path_factory.mktemp("volume"), s3_deployed["image"], **state)
    on_volume = KubeToDocker(stack, volume_docs)
    on_volume.run(find(volume_docs, "Deployment", "mlflow"), "volume-mlflow-pod")
    url = stack.url("volume-mlflow-pod", 5000)
    stack.wait_http(url + "/health", name="volume-mlflow-pod", timeout=240)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(url)
    experiment_id = mlflow.create_experiment(f"before-move-{uuid.uuid4().hex[:8]}")
    files = {"model/weights.txt": "0.5 0.25\n" * 300, "notes.md": "made on the volume\n"}
    runs = []
    for number in range(2):
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"before-move-{number}") as run:
            for name, text in files.items():
                (tmp_path / Path(name).name).write_text(text)
                mlflow.log_artifact(str(tmp_path / Path(name).name), artifact_path=str(Path(name).parent) if "/" in name else None)
        runs.append(run.info.run_id)
    stack.container("volume-mlflow-pod").stop(timeout=30)

    # 2. the move Job, rendered by the mlflow role with the inventory's S3 settings
    move_docs = render(tmp_path_factory.mktemp("move"), s3_deployed["image"], **state, **s3_deployed["s3_vars"],
                       _mlflow_manifests=[{"template": "artifacts-move-job.yaml.j2"}])
    move = find(move_docs, "Job")
    # the store's keys are in the server's Secret of the S3 rendering; the claim is the volume's
    mover = KubeToDocker(stack, s3_deployed["docs"] + [find(volume_docs, "PersistentVolumeClaim", "mlflow-artifacts"), move])
    mover.pvc_volumes = on_volume.pvc_volumes  # the same claim, the same volume
    mover.run(move, "move-job")
    assert stack.container("move-job").wait(timeout=300)["StatusCode"] == 0, stack.logs("move-job")[-3000:]
    assert f"Moved the artifacts volume to s3://{BUCKET}/{PREFIX}: 4 files copied" in stack.logs("move-job")
    keys = bucket_keys(s3_deployed)
    for run_id in runs:
        assert any(k.startswith(f"{PREFIX}/{experiment_id}/{run_id}/artifacts/") for k in keys), keys

    # 3. the server on S3 serves the old runs' artifacts
    mlflow.set_tracking_uri(s3_deployed["url"])
    for run_id in runs:
        for name, text in files.items():
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=str(tmp_path / run_id))
            assert Path(path).read_text() == text

    # 4. a rerun (after a failure half way, say) copies only what is missing
    mover.run(move, "move-job-again")
    assert stack.container("move-job-again").wait(timeout=300)["StatusCode"] == 0, stack.logs("move-job-again")[-3000:]
    assert "0 files copied (0 bytes), 4 already there." in stack.logs("move-job-again")
