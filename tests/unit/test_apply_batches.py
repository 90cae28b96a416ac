"""The apply_batches filter: a role's manifests in as few kubernetes.core.k8s calls as the
order allows (a faster rerun), never a Secret in a batch that is logged. The roles' use of
it, against the API stand-in (order, waits, second run unchanged), is in tests/api."""
import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.mlflow_k3s.plugins.filter.apply_batches import apply_batches

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def obj(kind, name):
    return {"kind": kind, "metadata": {"name": name}}


def test_neighbours_applied_the_same_way_share_one_call_in_order():
    pairs = [
        ({"template": "ns"}, obj("Namespace", "mlflow")),
        ({"template": "db"}, obj("Secret", "mlflow-db")),
        ({"template": "srv"}, obj("Secret", "mlflow-server")),
        ({"template": "svc"}, obj("Service", "mlflow")),
        ({"template": "np"}, obj("NetworkPolicy", "mlflow")),
        ({"template": "dep", "wait_timeout": 600}, obj("Deployment", "mlflow")),
        ({"template": "ing", "state": "absent"}, obj("Ingress", "mlflow")),
        ({"template": "gc"}, obj("CronJob", "mlflow-gc")),
    ]
    batches = apply_batches(pairs, 300)
    assert [b["label"] for b in batches] == [
        "Namespace/mlflow", "Secret/mlflow-db, Secret/mlflow-server", "Service/mlflow, NetworkPolicy/mlflow",
        "Deployment/mlflow", "Ingress/mlflow", "CronJob/mlflow-gc"]
    assert [b["secret"] for b in batches] == [False, True, False, False, False, False]
    assert [b["state"] for b in batches] == ["present"] * 4 + ["absent", "present"]
    assert [b["wait_timeout"] for b in batches] == [300, 300, 300, 600, 300, 300]
    assert [d for b in batches for d in b["definitions"]] == [p[1] for p in pairs]


def test_an_entry_marked_secret_is_never_batched_with_a_logged_one():
    pairs = [({"template": "a"}, obj("ConfigMap", "a")), ({"template": "b", "secret": True}, obj("Job", "b")),
             ({"template": "c"}, obj("ConfigMap", "c"))]
    assert [b["secret"] for b in apply_batches(pairs, 300)] == [False, True, False]


def test_a_wait_condition_starts_a_batch_of_its_own():
    done = {"type": "Complete", "status": "True"}
    pairs = [({"template": "a"}, obj("ConfigMap", "a")), ({"template": "b", "wait_condition": done}, obj("Job", "b"))]
    batches = apply_batches(pairs, 300)
    assert [b["wait_condition"] for b in batches] == [None, done]


def test_bad_input_is_named():
    with pytest.raises(AnsibleFilterError, match="expected \\(manifest entry, object\\) pairs"):
        apply_batches([({"template": "a"}, {"kind": "Secret"})], 300)


# ---- a rerun leaves out what is already applied and ready (issue 14, target 4) ----

def applied(definition, **live_fields):
    """The live copy of `definition` as kubernetes.core's apply leaves it: the definition,
    its last-applied annotation, the fields the API server sets, and `live_fields`."""
    live = json.loads(json.dumps(definition))
    live["metadata"].setdefault("annotations", {})[LAST_APPLIED] = json.dumps(definition, separators=(",", ":"), sort_keys=True)
    live["metadata"].update(uid="u-1", resourceVersion="7", generation=2)
    for key, value in live_fields.items():
        live[key] = value
    return live


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mlflow", "namespace": "mlflow"},
    "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "mlflow", "image": "mlflow:1", "args": ["--workers", "4"]}]}}},
}
READY = {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "mlflow"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}


def labels(batches):
    return [b["label"] for b in batches]


def test_objects_applied_from_the_same_definition_and_ready_are_left_out():
    defaulted = applied(DEPLOYMENT, status=READY)
    # what the API server adds (defaults) changes nothing
    defaulted["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    defaulted["spec"]["strategy"] = {"type": "RollingUpdate"}
    pairs = [({"template": "pvc"}, CLAIM), ({"template": "dep"}, DEPLOYMENT)]
    assert apply_batches(pairs, 300, [applied(CLAIM, status={"phase": "Pending"}), defaulted]) == []
    # without the live objects, everything is applied as before
    assert labels(apply_batches(pairs, 300)) == ["PersistentVolumeClaim/data, Deployment/mlflow"]


def test_a_missing_changed_or_unready_object_is_applied():
    pvc = ({"template": "pvc"}, CLAIM)
    dep = ({"template": "dep"}, DEPLOYMENT)
    live_claim = applied(CLAIM)
    cases = {
        "missing": None,
        "scaled by hand": applied(DEPLOYMENT, status=READY, spec=dict(DEPLOYMENT["spec"], replicas=3)),
        "a field the role no longer sets": applied(dict(DEPLOYMENT, spec=dict(DEPLOYMENT["spec"], paused=True)), status=READY),
        "applied by someone else": dict(applied(DEPLOYMENT, status=READY), metadata={"name": "mlflow", "namespace": "mlflow"}),
        "not ready": applied(DEPLOYMENT, status=dict(READY, availableReplicas=0, unavailableReplicas=1)),
        "an old generation": applied(DEPLOYMENT, status=dict(READY, observedGeneration=1)),
        "being deleted": applied(DEPLOYMENT, status=READY, metadata=dict(applied(DEPLOYMENT)["metadata"], deletionTimestamp="now")),
    }
    for case, live in cases.items():
        assert labels(apply_batches([pvc, dep], 300, [live_claim, live])) == ["Deployment/mlflow"], case
    # a list the role sets grew by hand: applied, the list is the role's
    grown = applied(DEPLOYMENT, status=READY)
    grown["spec"]["template"]["spec"]["containers"][0]["args"].append("--reload")
    assert labels(apply_batches([dep], 300, [grown])) == ["Deployment/mlflow"]


def test_a_wait_condition_must_hold_and_an_absent_object_must_be_gone():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "mlflow"}, "spec": {}}
    entry = {"template": "job", "wait_condition": {"type": "Complete", "status": "True"}}
    complete = applied(job, status={"conditions": [{"type": "Complete", "status": "True"}]})
    running = applied(job, status={"active": 1})
    assert apply_batches([(entry, job)], 300, [complete]) == []
    assert labels(apply_batches([(entry, job)], 300, [running])) == ["Job/migrate"]
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "mlflow", "namespace": "mlflow"}}
    gone = ({"template": "ing", "state": "absent"}, ingress)
    assert apply_batches([gone], 300, [None]) == []
    assert labels(apply_batches([gone], 300, [{"kind": "Ingress", "metadata": {"name": "mlflow"}}])) == ["Ingress/mlflow"]


def test_the_live_list_must_match_the_manifests():
    with pytest.raises(AnsibleFilterError, match="one live object .* per manifest: 2 manifests, 1 live"):
        apply_batches([({"template": "a"}, CLAIM), ({"template": "b"}, DEPLOYMENT)], 300, [None])
