"""The preflight of site.yml (playbooks/preflight.yml): every role's input is checked on the
controller before any host is contacted.

The inventory's only host points at a closed port on loopback: a run that got past the
preflight ends UNREACHABLE at the k3s play (the positive control shows it does), so "failed,
naming the variable, and unreachable=0" proves nothing was contacted.
"""
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from manifests import ROOT, ansible_env, run_playbook

CLOSED = {"ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_connection": "ssh",
          "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}

# (bad input, text the failure must contain): every role, types, rules across variables, typos.
BAD = [
    ({"mlflow_nodeport": 80}, "mlflow_nodeport must be a NodePort from 30000 to 32767"),
    # postgres_namespace follows it, and the postgres role is checked first.
    ({"mlflow_namespace": "MLflow"}, 'must be a DNS label (lower-case letters, digits, \'-\'), got "MLflow" (unless set, it is mlflow_namespace)'),
    ({"mlflow_image_mlflow_version": 3.17}, "mlflow_image_mlflow_version must be a release version"),
    ({"postgres_password": 123456}, "postgres_password must be a string"),
    ({"postgres_password": "two\nlines"}, "postgres_password must be a string (quote it in YAML"),
    ({"mlflow_node_port": 30080}, "mlflow_node_port is not a variable of homelab.mlflow_k3s: did you mean mlflow_nodeport?"),
    ({"postgres_storage_sise": "5Gi"}, "did you mean postgres_storage_size?"),
    ({"k3s_verison": "v1.36.4+k3s1"}, "did you mean k3s_version?"),
    ({"mlflow_image_flavour": "slim"}, "did you mean mlflow_image_flavor?"),
    ({"k3s_version": "1.36"}, "k3s_version must be a full k3s release"),
    ({"k3s_state": "gone"}, "k3s_state"),
    ({"postgres_client_pod_selectors": []}, "postgres_client_pod_selectors must be a non-empty list"),
    ({"postgres_client_namespaces": ["Bad_NS"]}, "postgres_client_namespaces must be a non-empty list of namespace names"),
    ({"postgres_backup_schedule": "daily"}, "postgres_backup_schedule must be empty"),
    ({"postgres_max_connections": 5}, "postgres_max_connections must be a whole number >= 10"),
    ({"postgres_port": "abc"}, "postgres_port"),
    ({"postgres_namespace": "DB"}, "postgres_namespace must be a DNS label"),
    ({"mlflow_workers": 0}, "mlflow_workers must be a whole number >= 1"),
    ({"mlflow_admin_password": "short-pass"}, "mlflow_admin_password must be a string of at least 12 characters"),
    ({"mlflow_extra_secret_env": {"AWS_SECRET_ACCESS_KEY": 12345}}, "mlflow_extra_secret_env must map environment variable names to strings"),
    ({"mlflow_auth_cache_seconds": -1}, "mlflow_auth_cache_seconds must be a number of seconds >= 0"),
    ({"mlflow_users": [{"name": "alice", "password": "short"}]}, "mlflow_users needs the login (mlflow_basic_auth_enabled) and must list"),
    ({"mlflow_replicas": 2}, "mlflow_replicas=2 needs shared artifact storage"),
    ({"mlflow_artifacts_destination": "s3://My_Bucket"}, 'mlflow_artifacts_destination must be empty (the artifacts volume) or s3://<bucket>[/<prefix>]'),
    ({"mlflow_artifacts_destination": "s3://lab/mlflow", "mlflow_s3_access_key_id": "AKIAEXAMPLE"},
     "mlflow_s3_access_key_id and mlflow_s3_secret_access_key must be given together"),
    ({"mlflow_s3_endpoint_url": "minio.lan:9000"}, "mlflow_s3_endpoint_url must be empty (AWS) or an http:// or https:// URL"),
    ({"mlflow_gc_older_than": "30 days"}, 'mlflow_gc_older_than must be a time such as 30d, 12h or 1d12h (MLflow\'s #d#h#m#s), got "30 days"'),
    ({"mlflow_gc_schedule": "nightly"}, "mlflow_gc_schedule must be empty (no garbage collection) or a cron expression"),
    ({"mlflow_db_pool_size": 30}, "The SQLAlchemy pool does not fit"),
    ({"mlflow_ingress_enabled": True}, "mlflow_ingress_host must be a host name"),
    ({"mlflow_server": "flask"}, "mlflow_server"),
    ({"mlflow_image_flavor": "tiny"}, "mlflow_image_flavor"),
    ({"mlflow_image_mlflow_version": "3.18.0"}, "mlflow_image_mlflow_version 3.18.0 has no tested pin set (tested: 3.17.2)"),
    ({"mlflow_image_extra_packages": ["boto3"]}, "mlflow_image_extra_packages must be pinned"),
    ({"mlflow_image_build_hosts": ["nohost"]}, "mlflow_image_build_hosts names hosts that are not in the inventory: nohost"),
    ({"mlflow_image_build_host": "localhost"}, "mlflow_image_build_host is not a variable of homelab.mlflow_k3s: did you mean mlflow_image_build_hosts?"),
    ({"mlflow_image_skip_architectures": ["armhf"]},
     "mlflow_image_skip_architectures must name architectures as Kubernetes does (amd64, arm64, arm, s390x), got armhf"),
    ({"mlflow_k3s_state_dir": "relative/state"}, "mlflow_k3s_state_dir must be an absolute path"),
]


# Playbooks whose preflight must pass on the same good input (no MLflow image given: they deploy no MLflow).
OTHER_PLAYBOOKS = ["playbooks/backup.yml", "playbooks/reset.yml"]


def run(tmp_path, extra_vars, playbook="site.yml"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    inventory = {"all": {"children": {"k3s_cluster": {"children": {
        "k3s_server": {"hosts": {"server1": dict(CLOSED)}}, "k3s_agent": {"hosts": {}}}}}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    variables = {"mlflow_k3s_state_dir": str(tmp_path / "state"), "k3s_download_cache_dir": str(tmp_path / "cache")}
    variables.update(extra_vars)
    env = dict(ansible_env(), ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    proc = run_playbook(ROOT / playbook, tmp_path / "hosts.json", variables, env=env, timeout=300)
    recap = re.search(r"server1\s+: ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout)
    return proc, (int(recap.group(1)), int(recap.group(2))) if recap else (None, None)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("preflight")
    cases = [({}, None)] + BAD
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(run, base / f"case{i}", case[0]) for i, case in enumerate(cases)]
        futures += [pool.submit(run, base / f"other{i}", {}, playbook) for i, playbook in enumerate(OTHER_PLAYBOOKS)]
        return [f.result() for f in futures]


def test_good_input_passes_the_preflight_and_reaches_the_host(results):
    proc, (unreachable, _failed) = results[0]
    assert unreachable == 1, proc.stdout[-3000:]
    assert "Preflight" in proc.stdout


@pytest.mark.parametrize("index", range(len(OTHER_PLAYBOOKS)), ids=OTHER_PLAYBOOKS)
def test_good_input_passes_the_preflight_of_the_other_playbooks(results, index):
    proc, _recap = results[len(BAD) + 1 + index]
    after_preflight = proc.stdout.rsplit("PLAY [Preflight", 1)[1]
    assert "PLAY [" in after_preflight, proc.stdout[-3000:]


@pytest.mark.parametrize("index", range(len(BAD)), ids=[next(iter(case[0])) for case in BAD])
def test_bad_input_fails_naming_the_variable_before_any_host(results, index):
    proc, (unreachable, failed) = results[index + 1]
    _bad, needle = BAD[index]
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert unreachable in (0, None), "a host was contacted:\n" + output[-3000:]
    assert "UNREACHABLE" not in output
    assert needle in " ".join(output.split()), output[-3000:]


def make_backup(path, dump=b"PGDMP\x01\x0e\x00" + bytes(64), image="localhost/homelab/mlflow:3.17.2-0123456789ab",
                tamper=False, s3=None):
    """A backup directory as backup.yml writes it; with s3 (the destination) it holds no tarball."""
    import hashlib
    import io
    import tarfile
    path.mkdir(parents=True)
    (path / "database.dump").write_bytes(dump)
    files = ["database.dump"]
    if s3 is None:
        files.append("artifacts.tar.gz")
        with tarfile.open(path / "artifacts.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo("pvc-1_mlflow_mlflow-artifacts/artifacts/1/run/artifacts/a.txt")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"a\n"))
    sha = {name: hashlib.sha256((path / name).read_bytes()).hexdigest() for name in files}
    if tamper:
        (path / "database.dump").write_bytes(dump + b"x")
    (path / "backup.json").write_text(json.dumps({
        "time": path.name, "mlflow_image": image, "sha256": sha, "database_dump": "database.dump",
        "artifacts_tarball": None if s3 else "artifacts.tar.gz",
        "artifacts_source": s3 or "server1:/var/lib/rancher/k3s/storage/pvc-1_mlflow_mlflow-artifacts"}))
    return path


S3 = {"mlflow_artifacts_destination": "s3://lab/mlflow", "mlflow_s3_endpoint_url": "http://minio.lan:9000"}


RESTORE_CASES = [
    ({}, {"restore_confirm": True}, None),
    ({}, {}, "Run again with -e restore_confirm=true"),
    ({"tamper": True}, {"restore_confirm": True}, "database.dump is damaged or was changed: its sha256 is"),
    ({"dump": b"-- plain SQL\n"}, {"restore_confirm": True}, "database.dump is not a pg_dump custom-format archive"),
    ({"image": "localhost/homelab/mlflow:3.99.0-0123456789ab"}, {"restore_confirm": True},
     "The backup was made by MLflow 3.99.0"),
    ({"s3": "s3://lab/mlflow"}, dict(S3, restore_confirm=True), None),
    ({"s3": "s3://lab/mlflow"}, dict(S3), "The artifacts are not in this backup: they stay in s3://lab/mlflow"),
    ({"s3": "s3://lab/mlflow"}, {"restore_confirm": True},
     "its artifacts are in s3://lab/mlflow and mlflow_artifacts_destination is the artifacts volume"),
    ({"s3": "s3://lab/mlflow"}, dict(S3, mlflow_artifacts_destination="s3://other", restore_confirm=True),
     "its artifacts are in s3://lab/mlflow and mlflow_artifacts_destination is s3://other"),
    ({}, dict(S3, restore_confirm=True), "Restore it with mlflow_artifacts_destination empty"),
]


@pytest.fixture(scope="module")
def restore_results(tmp_path_factory):
    base = tmp_path_factory.mktemp("restore")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(run, base / f"case{i}", dict(extra, restore_from=str(make_backup(base / f"backup{i}", **backup))),
                               "playbooks/restore.yml")
                   for i, (backup, extra, _needle) in enumerate(RESTORE_CASES)]
        return [f.result() for f in futures]


RESTORE_IDS = ["good", "unconfirmed", "tampered", "not-a-dump", "newer-mlflow",
               "s3-good", "s3-unconfirmed", "s3-to-volume", "s3-to-other-bucket", "volume-to-s3"]


@pytest.mark.parametrize("index", range(len(RESTORE_CASES)), ids=RESTORE_IDS)
def test_restore_checks_the_backup_and_asks_for_confirmation_before_any_host(restore_results, index):
    proc, (unreachable, _failed) = restore_results[index]
    needle = RESTORE_CASES[index][2]
    output = " ".join((proc.stdout + proc.stderr).split())
    if needle is None:
        assert unreachable == 1, output[-3000:]  # got past every check, to the first host
        return
    assert proc.returncode != 0 and unreachable in (0, None), output[-3000:]
    assert "TASK [Gather the host names]" not in proc.stdout
    assert needle in output, output[-3000:]


def test_moving_the_artifacts_needs_a_store_to_move_to_before_any_host(tmp_path):
    proc, (unreachable, _failed) = run(tmp_path / "volume", {}, "playbooks/move_artifacts.yml")
    output = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0 and unreachable in (0, None), output[-3000:]
    assert ('mlflow_artifacts_destination must be the s3://<bucket>[/<prefix>] to move the artifacts volume into, got ""'
            in output), output[-3000:]
    proc, (unreachable, _failed) = run(tmp_path / "s3", dict(S3), "playbooks/move_artifacts.yml")
    assert unreachable == 1, (proc.stdout + proc.stderr)[-3000:]  # got past every check, to the first host
