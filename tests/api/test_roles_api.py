"""L3a: the postgres and mlflow roles, run by ansible-playbook, against a STAND-IN Kubernetes
API (kmock's KubernetesEmulator on 127.0.0.1, see standin_k8s.py) and a STAND-IN controller
that reports Deployments available and Jobs complete. Proves which objects are sent, their
content, their order, that `wait` waits, and apply-path idempotence; not real-server
semantics (no scheduling, no containers: that is L3b)."""

import base64
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from standin_k8s import StandInCluster

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
IMAGE = "localhost/homelab/mlflow:3.17.2-0123456789ab"
NS = "mlflow"

PLAYBOOK = """
- name: Deploy PostgreSQL and MLflow (roles under test)
  hosts: localhost
  gather_facts: false
  roles:
    - role: homelab.mlflow_k3s.postgres
      when: "'postgres' in roles_under_test"
    - role: homelab.mlflow_k3s.mlflow
      when: "'mlflow' in roles_under_test"
"""


def k3s_minor():
    version = yaml.safe_load((ROOT / "roles/k3s/defaults/main.yml").read_text())["k3s_version"]
    major, minor = re.match(r"v?(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


@pytest.fixture
def cluster():
    with StandInCluster(k8s_version=k3s_minor(), delay=0.5) as c:
        yield c


class Runner:
    def __init__(self, cluster, tmp_path):
        self.cluster = cluster
        self.tmp = tmp_path
        (tmp_path / "tmp").mkdir()
        self.playbook = tmp_path / "deploy.yml"
        self.playbook.write_text(PLAYBOOK)
        self.inventory = ROOT / "tests" / "hosts.yml"
        kubeconfig = cluster.kubeconfig(tmp_path / "kubeconfig.yaml")
        self.vars = {
            "roles_under_test": ["postgres", "mlflow"],
            "mlflow_k3s_kubeconfig": str(kubeconfig),
            "mlflow_k3s_state_dir": str(tmp_path / "credentials"),
            "mlflow_image_ref": IMAGE, "postgres_wait_timeout": 60, "mlflow_wait_timeout": 60,
            # poll the stand-in every second instead of the default 5
            "k8s_apply_wait_sleep": 1,
        }

    def run(self, check=False, args=(), playbook=None, **overrides):
        env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                   TMPDIR=str(self.tmp / "tmp"), ANSIBLE_NOCOLOR="1")
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(playbook or self.playbook),
               "-e", json.dumps(dict(self.vars, **overrides)), *args]
        if check:
            cmd += ["--check", "--diff"]
        start = len(self.cluster.api.log)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        proc.log_start = start
        m = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout)
        proc.changed = int(m.group(2)) if m else None
        return proc


@pytest.fixture
def runner(cluster, tmp_path):
    return Runner(cluster, tmp_path)


def decode(secret, key):
    return base64.b64decode(secret["data"][key]).decode()


def created(cluster, since=0):
    return [(e["kind"], e["name"]) for e in cluster.writes(since) if e["action"] == "create"]


EXPECTED = {
    ("Namespace", None, NS),
    ("Secret", NS, "postgres"), ("PersistentVolumeClaim", NS, "postgres-data"),
    ("PersistentVolumeClaim", NS, "postgres-backups"), ("Service", NS, "postgres"),
    ("NetworkPolicy", NS, "postgres"), ("Deployment", NS, "postgres"), ("CronJob", NS, "postgres-backup"),
    ("Secret", NS, "mlflow-db"), ("Secret", NS, "mlflow-server"), ("PersistentVolumeClaim", NS, "mlflow-artifacts"),
    ("Service", NS, "mlflow"), ("Service", NS, "mlflow-metrics"), ("NetworkPolicy", NS, "mlflow"),
    ("Deployment", NS, "mlflow"), ("CronJob", NS, "mlflow-gc"),
}


def test_deploy_order_content_wait_and_idempotence(cluster, runner):
    first = runner.run()
    assert first.returncode == 0, first.stdout[-5000:]
    objects = cluster.snapshot()
    jobs = [k for k in objects if k[0] == "Job"]
    assert len(jobs) == 1 and re.fullmatch(r"mlflow-db-upgrade-[0-9a-f]{10}", jobs[0][2])
    assert set(objects) == EXPECTED | set(jobs)

    # content
    uri = decode(objects[("Secret", NS, "mlflow-db")], "backend-store-uri")
    password = decode(objects[("Secret", NS, "postgres")], "password")
    assert uri.startswith("postgresql+psycopg2://mlflow:") and uri.endswith("@postgres.mlflow.svc:5432/mlflow")
    assert (runner.tmp / "credentials" / "postgres-password").read_text().strip() == password
    assert oct((runner.tmp / "credentials" / "postgres-password").stat().st_mode & 0o777) == "0o600"
    deployment = objects[("Deployment", NS, "mlflow")]
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == IMAGE and c["imagePullPolicy"] == "IfNotPresent"
    assert objects[("Service", NS, "mlflow")]["spec"]["ports"][0]["nodePort"] == 30001
    assert "kubectl.kubernetes.io/last-applied-configuration" in deployment["metadata"]["annotations"]
    for secret in ("postgres", "mlflow-db", "mlflow-server"):
        assert password not in first.stdout and uri not in first.stdout

    # order: namespace, secrets and PVCs before workloads; the migration Job before the Deployment
    order = created(cluster)
    pos = {item: i for i, item in enumerate(order)}
    assert order[0] == ("Namespace", NS)
    for before in [("Secret", "postgres"), ("PersistentVolumeClaim", "postgres-data")]:
        assert pos[before] < pos[("Deployment", "postgres")]
    for before in [("Secret", "mlflow-db"), ("Secret", "mlflow-server"), ("PersistentVolumeClaim", "mlflow-artifacts"),
                   ("Job", jobs[0][2])]:
        assert pos[before] < pos[("Deployment", "mlflow")]
    assert pos[("Deployment", "postgres")] < pos[("Job", jobs[0][2])]

    # wait: each next object was sent only after the stand-in controller reported the previous ready
    log = cluster.api.log
    t_create = {(e["kind"], e["name"]): e["t"] for e in log if e["action"] == "create" and not e["dry_run"]}
    t_status = {(s["kind"], s["name"]): s["t"] for s in cluster.api.status_log}
    assert t_status[("Deployment", "postgres")] < t_create[("Secret", "mlflow-db")]
    assert t_status[("Job", jobs[0][2])] < t_create[("Deployment", "mlflow")]
    assert t_status[("Deployment", "mlflow")] - t_create[("Deployment", "mlflow")] >= 0.5

    # second run: nothing changes, and nothing is even sent: no no-op PATCH (issue 14, target 4)
    second = runner.run()
    assert second.returncode == 0, second.stdout[-3000:]
    assert second.changed == 0, second.stdout[-5000:]
    assert cluster.requests(second.log_start, "create", "update", "delete") == []

    # a change by hand to a field the role sets is put back; the rest is left alone
    cluster.merge_patch("/apis/apps/v1/namespaces/mlflow/deployments/mlflow", {"spec": {"replicas": 3}})
    third = runner.run()
    assert third.returncode == 0, third.stdout[-3000:]
    assert [(e["action"], e["kind"], e["name"]) for e in cluster.writes(third.log_start)] == [("update", "Deployment", "mlflow")]
    assert cluster.snapshot()[("Deployment", NS, "mlflow")]["spec"]["replicas"] == 1

    # --check --diff on the converged cluster: no change, no failure, nothing written
    check = runner.run(check=True)
    assert check.returncode == 0, check.stdout[-3000:]
    assert check.changed == 0, check.stdout[-5000:]
    assert cluster.writes(check.log_start) == []
    assert password not in check.stdout


def test_one_variable_changes_exactly_its_objects(cluster, runner):
    assert runner.run().returncode == 0
    before = cluster.snapshot()

    workers = runner.run(mlflow_workers=2)
    assert workers.returncode == 0, workers.stdout[-3000:]
    assert [(e["action"], e["kind"], e["name"]) for e in cluster.writes(workers.log_start)] == \
        [("update", "Deployment", "mlflow")]
    deployment = cluster.snapshot()[("Deployment", NS, "mlflow")]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--workers") + 1] == "2"
    assert deployment["metadata"]["generation"] == before[("Deployment", NS, "mlflow")]["metadata"]["generation"] + 1

    port = runner.run(mlflow_workers=2, mlflow_nodeport=30080)
    assert port.returncode == 0, port.stdout[-3000:]
    assert [(e["action"], e["kind"], e["name"]) for e in cluster.writes(port.log_start)] == [("update", "Service", "mlflow")], \
        [e["body"] for e in cluster.writes(port.log_start)]

    # a new image: a new migration Job, completed before the Deployment is updated
    image = runner.run(mlflow_workers=2, mlflow_nodeport=30080, mlflow_image_ref=IMAGE.replace("0123456789ab", "fedcba987654"))
    assert image.returncode == 0, image.stdout[-3000:]
    old_job = [k[2] for k in before if k[0] == "Job"][0]
    writes = [(e["action"], e["kind"], e["name"]) for e in cluster.writes(image.log_start)]
    new_job = writes[0][2]
    # the Job of the old image goes only after the new Deployment is ready
    assert writes == [("create", "Job", new_job), ("update", "Deployment", "mlflow"), ("update", "CronJob", "mlflow-gc"),
                      ("delete", "Job", old_job)]
    assert [k[2] for k in cluster.snapshot() if k[0] == "Job"] == [new_job]

    # a rotated database password: both Secrets that hold it and both pods that read it
    rotate = runner.run(mlflow_workers=2, mlflow_nodeport=30080, mlflow_image_ref=IMAGE.replace("0123456789ab", "fedcba987654"),
                        postgres_password="rotated:p@ss")
    assert rotate.returncode == 0, rotate.stdout[-3000:]
    writes = [(e["action"], e["kind"], e["name"]) for e in cluster.writes(rotate.log_start)]
    # The running database gets the new password first (ALTER ROLE in a Job, its Secret
    # and Job removed after), then the Secrets change and the pods restart.
    change = "postgres-password-change"
    assert writes[:4] == [("create", "Secret", change), ("create", "Job", change),
                          ("delete", "Job", change), ("delete", "Secret", change)], writes
    # mlflow-server holds the auth store's URI (basic_auth.ini), the tracking database's.
    assert sorted(writes[4:]) == sorted([
        ("update", "Secret", "postgres"), ("update", "Deployment", "postgres"),
        ("update", "Secret", "mlflow-db"), ("update", "Secret", "mlflow-server"), ("update", "Deployment", "mlflow")])
    after = cluster.snapshot()
    assert decode(after[("Secret", NS, "mlflow-db")], "backend-store-uri").startswith("postgresql+psycopg2://mlflow:rotated%3Ap%40ss@")
    key = "checksum/secrets"
    assert after[("Deployment", NS, "mlflow")]["spec"]["template"]["metadata"]["annotations"][key] != \
        before[("Deployment", NS, "mlflow")]["spec"]["template"]["metadata"]["annotations"][key]


REMOVE_PLAYBOOK = """
- name: Remove MLflow and PostgreSQL with their data (what reset.yml runs)
  hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow
        tasks_from: remove
      vars:
        mlflow_remove_data: true
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.postgres
        tasks_from: remove
      vars:
        postgres_remove_data: true
"""


def secret_forms(value):
    """A secret as it can leak: plain, base64 (a Secret's data) and URL-encoded (a URI)."""
    from urllib.parse import quote
    return {value, base64.b64encode(value.encode()).decode(), quote(value, safe="")}


def test_no_secret_in_verbose_or_diff_output(cluster, runner):
    """Issue 11: every playbook path that reads, writes or loops over Secrets, run with -vvv
    and --diff (a first deploy, a rotation of both passwords, --check, the removal), shows
    no generated or given secret in any form."""
    given = {"postgres_password": "rotated-db-Passw0rd", "mlflow_admin_password": "rotated-admin-Passw0rd",
             "mlflow_extra_secret_env": {"AWS_SECRET_ACCESS_KEY": "given-s3-secret-key"}}
    verbose = ("-vvv", "--diff")
    outputs = [runner.run(args=verbose, mlflow_extra_secret_env=given["mlflow_extra_secret_env"])]
    objects = cluster.snapshot()
    generated = [decode(objects[("Secret", NS, "postgres")], "password"),
                 decode(objects[("Secret", NS, "mlflow-db")], "backend-store-uri")]
    generated += [decode(objects[("Secret", NS, "mlflow-server")], key) for key in
                  ("webhook-encryption-key", "flask-secret-key", "admin-password", "basic_auth.ini")]
    generated += [path.read_text().split()[0] for path in (runner.tmp / "credentials").iterdir()
                  if path.name not in ("kubeconfig.yaml", ".gitignore", "mlflow.env")]
    outputs.append(runner.run(args=verbose, **given))
    objects = cluster.snapshot()
    generated.append(decode(objects[("Secret", NS, "mlflow-db")], "backend-store-uri"))
    outputs.append(runner.run(args=verbose + ("--check",), **given))
    (runner.tmp / "remove.yml").write_text(REMOVE_PLAYBOOK)
    outputs.append(runner.run(args=verbose, playbook=runner.tmp / "remove.yml", **given))
    for proc in outputs:
        assert proc.returncode == 0, proc.stdout[-3000:]
    assert [e for e in cluster.writes(outputs[-1].log_start) if e["action"] == "delete" and e["kind"] == "Secret"]
    secrets = [value for value in generated + [given["postgres_password"], given["mlflow_admin_password"],
                                               given["mlflow_extra_secret_env"]["AWS_SECRET_ACCESS_KEY"]]
               if len(value) >= 8]
    for proc in outputs:
        text = proc.stdout + proc.stderr
        leaked = [form for value in secrets for form in secret_forms(value) if form in text]
        assert not leaked, [text[max(0, text.index(form) - 300):text.index(form) + 50] for form in leaked][:2]


def test_disabling_backups_and_enabling_ingress(cluster, runner):
    assert runner.run().returncode == 0
    changed = runner.run(postgres_backup_schedule="", mlflow_ingress_enabled=True, mlflow_ingress_host="mlflow.home.lan")
    assert changed.returncode == 0, changed.stdout[-3000:]
    writes = [(e["action"], e["kind"], e["name"]) for e in cluster.writes(changed.log_start)]
    assert sorted(writes) == sorted([
        ("delete", "CronJob", "postgres-backup"),
        ("update", "Service", "mlflow"),  # the NodePort closes: the Ingress is the way in
        ("update", "Deployment", "mlflow"),  # the ingress host joins the allowed hosts
        ("create", "Secret", "mlflow-ingress-tls"), ("create", "Ingress", "mlflow")]), writes
    objects = cluster.snapshot()
    assert ("CronJob", NS, "postgres-backup") not in objects
    assert objects[("Ingress", NS, "mlflow")]["spec"]["rules"][0]["host"] == "mlflow.home.lan"
    service = objects[("Service", NS, "mlflow")]["spec"]
    # the patch sends nodePort: null (the emulator keeps the null a real server drops)
    assert service["type"] == "ClusterIP" and service["ports"][0].get("nodePort") is None
    assert objects[("Secret", NS, "mlflow-ingress-tls")]["type"] == "kubernetes.io/tls"
    again = runner.run(postgres_backup_schedule="", mlflow_ingress_enabled=True, mlflow_ingress_host="mlflow.home.lan")
    assert again.returncode == 0 and again.changed == 0, again.stdout[-3000:]


MOVE_PLAYBOOK = """
- name: Move the artifacts volume into the bucket, as playbooks/move_artifacts.yml does
  hosts: localhost
  gather_facts: false
  tasks:
    - name: PostgreSQL
      ansible.builtin.include_role:
        name: homelab.mlflow_k3s.postgres
    - name: Move
      ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow
        tasks_from: move_artifacts
    - name: MLflow on S3
      ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow
"""


def test_s3_artifacts_move_the_volume_first_need_no_volume_and_leave_the_claim_alone(cluster, runner):
    """Issue 12: switching to an S3-compatible store over a volume that holds the runs'
    artifacts is refused until playbooks/move_artifacts.yml copied it (a failed copy starts
    MLflow again on the volume); then the claim stays, no pod mounts it, replicas roll and
    the keys go by secretKeyRef only."""
    assert runner.run().returncode == 0
    secret_key = "s3-secret-Key/with+signs"
    s3 = {"mlflow_artifacts_destination": "s3://lab-artifacts/mlflow", "mlflow_s3_endpoint_url": "http://minio.lan:9000",
          "mlflow_s3_addressing_style": "path", "mlflow_s3_access_key_id": "mlflow",
          "mlflow_s3_secret_access_key": secret_key, "mlflow_replicas": 2}
    refused = runner.run(**s3)
    assert refused.returncode != 0
    assert "Run playbooks/move_artifacts.yml -i <inventory> to copy them into the bucket" in " ".join(refused.stdout.split())
    assert cluster.writes(refused.log_start) == []

    move = runner.tmp / "move.yml"
    move.write_text(MOVE_PLAYBOOK)
    cluster.controller.failing_jobs = ["mlflow-artifacts-move"]
    failed = runner.run(playbook=move, **s3)
    assert failed.returncode != 0
    assert "The artifacts were not moved to s3://lab-artifacts/mlflow" in " ".join(failed.stdout.split()), failed.stdout[-3000:]
    pod = cluster.snapshot()[("Deployment", NS, "mlflow")]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["data"]["persistentVolumeClaim"] == {"claimName": "mlflow-artifacts"}

    cluster.controller.failing_jobs = []
    switched = runner.run(playbook=move, args=("--diff", "-v"), **s3)
    assert switched.returncode == 0, switched.stdout[-3000:]
    writes = [(e["action"], e["kind"], e["name"]) for e in cluster.writes(switched.log_start)]
    assert ("delete", "PersistentVolumeClaim", "mlflow-artifacts") not in writes
    jobs = [w for w in writes if w[1] == "Job"]
    # MLflow stopped, the failed copy replaced, then the bucket check of the migration, then the rollout
    assert writes.index(("delete", "Deployment", "mlflow")) < writes.index(jobs[0])
    assert jobs[0][2].startswith("mlflow-artifacts-move-") and jobs[1] == ("create", "Job", jobs[0][2])
    assert [j for j in jobs if j[2].startswith("mlflow-db-upgrade-")][0][0] == "create"
    objects = cluster.snapshot()
    claim = objects[("PersistentVolumeClaim", NS, "mlflow-artifacts")]
    assert claim["metadata"]["annotations"]["mlflow-k3s.homelab/artifacts-moved-to"] == "s3://lab-artifacts/mlflow"
    move_pod = objects[("Job", NS, jobs[0][2])]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in move_pod["volumes"]}["artifacts"]["persistentVolumeClaim"] == {
        "claimName": "mlflow-artifacts", "readOnly": True}
    pod = objects[("Deployment", NS, "mlflow")]["spec"]["template"]["spec"]
    assert objects[("Deployment", NS, "mlflow")]["spec"]["replicas"] == 2
    assert (objects[("Deployment", NS, "mlflow")]["spec"].get("strategy") or {}).get("type") != "Recreate"
    assert {v["name"]: v for v in pod["volumes"]}["data"].get("persistentVolumeClaim") is None
    for spec in (pod, move_pod):
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {
            "secretKeyRef": {"name": "mlflow-server", "key": "AWS_SECRET_ACCESS_KEY"}}}
    text = switched.stdout + switched.stderr
    assert not [form for form in secret_forms(secret_key) if form in text]
    again = runner.run(**s3)
    assert again.returncode == 0 and again.changed == 0, again.stdout[-3000:]


def test_a_failed_migration_fails_at_once_with_its_log_and_runs_again_next_time(cluster, runner):
    cluster.controller.failing_jobs = ["mlflow-db-upgrade"]
    proc = runner.run(mlflow_wait_timeout=120)
    ended = time.monotonic()
    assert proc.returncode != 0
    [job] = [k[2] for k in cluster.snapshot() if k[0] == "Job"]
    assert ("Deployment", NS, "mlflow") not in cluster.snapshot()
    # failed as soon as the Job did, not after the 120 s timeout, with the reason and the log
    failed_at = next(s["t"] for s in cluster.api.status_log if s["name"] == job)
    assert ended - failed_at < 20, ended - failed_at
    assert f"Job {NS}/{job} failed (BackoffLimitExceeded" in proc.stdout, proc.stdout[-3000:]
    assert "alembic.util.exc.CommandError: Can't locate revision" in proc.stdout

    # the next run replaces the failed Job (same spec, same name) and rolls out
    cluster.controller.failing_jobs = []
    again = runner.run(mlflow_wait_timeout=120)
    assert again.returncode == 0, again.stdout[-3000:]
    writes = [(e["action"], e["kind"], e["name"]) for e in cluster.writes(again.log_start) if e["kind"] == "Job"]
    assert writes == [("delete", "Job", job), ("create", "Job", job)], writes
    objects = cluster.snapshot()
    assert ("Deployment", NS, "mlflow") in objects
    assert not [k for k in objects if k[0] == "Pod"], "the failed Job's pod goes with it"


def test_a_changed_claim_is_refused_before_anything_is_applied(cluster, runner):
    assert runner.run().returncode == 0
    # each run refuses every claim change of the role that fails first
    for change, needles in [
            ({"postgres_storage_size": "10Gi", "postgres_backup_storage_size": "1Gi", "mlflow_workers": 2},
             ["postgres_storage_size 10Gi is more than the live claim's 5Gi", "'local-path' does not set allowVolumeExpansion",
              "postgres_backup_storage_size 1Gi is less than the live claim's 5Gi: a claim cannot shrink"]),
            ({"mlflow_artifacts_access_mode": "ReadWriteMany", "mlflow_artifacts_storage_class": "nfs-client"},
             ["mlflow_artifacts_access_mode ReadWriteMany is not the live claim's ReadWriteOnce",
              "mlflow_artifacts_storage_class 'nfs-client' is not the live claim's class 'local-path'"])]:
        proc = runner.run(**change)
        assert proc.returncode != 0, change
        output = " ".join(proc.stdout.split())
        for needle in needles + ["playbooks/backup.yml", "reset_delete_data=true", "playbooks/restore.yml"]:
            assert needle in output, (change, needle, proc.stdout[-3000:])
        assert cluster.writes(proc.log_start) == [], change

    # a class that allows expansion: the claim grows, nothing else changes
    def allow_expansion():
        key = next(k for k in cluster.api.objects if k[2] == "local-path")
        cluster.api.objects[key].patch({"allowVolumeExpansion": True})
    cluster.call(allow_expansion)
    grow = runner.run(postgres_storage_size="10Gi")
    assert grow.returncode == 0, grow.stdout[-3000:]
    assert [(e["action"], e["kind"], e["name"]) for e in cluster.writes(grow.log_start)] == \
        [("update", "PersistentVolumeClaim", "postgres-data")]
    assert cluster.snapshot()[("PersistentVolumeClaim", NS, "postgres-data")]["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_the_standin_refuses_what_the_api_server_refuses(cluster, runner):
    """The stand-in itself: an immutable change sent as the roles would send it is refused
    with the API server's status (see standin_k8s.py for the sources)."""
    assert runner.run().returncode == 0
    import kubernetes
    client = kubernetes.config.new_client_from_config(str(runner.tmp / "kubeconfig.yaml"))
    core, apps = kubernetes.client.CoreV1Api(client), kubernetes.client.AppsV1Api(client)
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.patch_namespaced_persistent_volume_claim("postgres-data", NS, {"spec": {"storageClassName": "other"}})
    assert refused.value.status == 422 and "spec is immutable after creation" in refused.value.body
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.patch_namespaced_persistent_volume_claim(
            "postgres-data", NS, {"spec": {"resources": {"requests": {"storage": "50Gi"}}}}, dry_run="All")
    assert refused.value.status == 403 and "must support resize" in refused.value.body
    with pytest.raises(kubernetes.client.ApiException) as refused:
        apps.patch_namespaced_deployment("mlflow", NS, {"spec": {"selector": {"matchLabels": {"app": "other"}}}})
    assert refused.value.status == 422 and "spec.selector: field is immutable" in refused.value.body


@pytest.mark.parametrize("role,bad,needle", [
    ("mlflow", {"mlflow_nodeport": 29999}, "mlflow_nodeport"),
    ("mlflow", {"mlflow_workers": 0}, "mlflow_workers"),
    ("mlflow", {"mlflow_artifacts_storage_size": "20 gigs"}, "mlflow_artifacts_storage_size"),
    ("mlflow", {"mlflow_namespace": ""}, "mlflow_namespace"),
    ("mlflow", {"mlflow_replicas": 3}, "ReadWriteOnce"),
    ("postgres", {"postgres_storage_size": "5GB"}, "postgres_storage_size"),
    ("postgres", {"postgres_namespace": ""}, "postgres_namespace"),
])
def test_bad_values_fail_before_any_object_is_applied(cluster, runner, role, bad, needle):
    proc = runner.run(roles_under_test=[role], **bad)
    assert proc.returncode != 0
    assert needle in proc.stdout
    assert cluster.writes() == []
    assert cluster.snapshot() == {}
