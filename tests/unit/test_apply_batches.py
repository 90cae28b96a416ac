"""The apply_batches filter: a role's manifests in as few kubernetes.core.k8s calls as the
order allows (a faster rerun), never a Secret in a batch that is logged. The roles' use of
it, against the API stand-in (order, waits, second run unchanged), is in tests/api."""
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.mlflow_k3s.plugins.filter.apply_batches import apply_batches


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
