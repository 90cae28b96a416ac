"""The claim_changes filter: which changes of a live PersistentVolumeClaim the API server
refuses (Kubernetes' ValidatePersistentVolumeClaimUpdate and PersistentVolumeClaimResize
admission), each named by the variable behind it. The roles' use of it, against the strict
API stand-in, is in tests/api."""
from ansible_collections.homelab.mlflow_k3s.plugins.filter.claim_changes import claim_changes

VARIABLES = {"size": "postgres_storage_size", "class": "postgres_storage_class", "access_mode": "x_access_mode"}
LOCAL_PATH = {"metadata": {"name": "local-path"}}
EXPANDABLE = {"metadata": {"name": "local-path"}, "allowVolumeExpansion": True}


def claim(size="5Gi", storage_class="local-path", modes=("ReadWriteOnce",), bound=None):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    result = {"spec": spec}
    if bound:
        result["status"] = {"phase": "Bound", "capacity": {"storage": bound}}
    return result


def test_no_live_claim_or_no_change():
    assert claim_changes(claim(), None, [LOCAL_PATH], VARIABLES) == []
    assert claim_changes(claim(), claim(bound="5Gi"), [LOCAL_PATH], VARIABLES) == []
    # the same size written another way, and a rendered claim that leaves the class to the default
    assert claim_changes(claim(size="5120Mi"), claim(bound="5Gi"), [LOCAL_PATH], VARIABLES) == []
    assert claim_changes(claim(storage_class=None), claim(bound="5Gi"), [LOCAL_PATH], VARIABLES) == []


def test_refused_changes_name_the_variable():
    [grow] = claim_changes(claim(size="10Gi"), claim(bound="5Gi"), [LOCAL_PATH], VARIABLES)
    assert grow.startswith("postgres_storage_size 10Gi is more than the live claim's 5Gi") and "allowVolumeExpansion" in grow
    [shrink] = claim_changes(claim(size="1Gi"), claim(bound="5Gi"), [EXPANDABLE], VARIABLES)
    assert "postgres_storage_size 1Gi" in shrink and "cannot shrink" in shrink
    [moved] = claim_changes(claim(storage_class="nfs"), claim(bound="5Gi"), [LOCAL_PATH], VARIABLES)
    assert "postgres_storage_class 'nfs'" in moved and "'local-path'" in moved
    [modes] = claim_changes(claim(modes=["ReadWriteMany"]), claim(bound="5Gi"), [LOCAL_PATH], VARIABLES)
    assert "x_access_mode ReadWriteMany" in modes and "ReadWriteOnce" in modes
    [unbound] = claim_changes(claim(size="10Gi"), claim(), [EXPANDABLE], VARIABLES)
    assert "not bound" in unbound


def test_growth_on_an_expandable_class_is_accepted():
    assert claim_changes(claim(size="10Gi"), claim(bound="5Gi"), [EXPANDABLE], VARIABLES) == []
