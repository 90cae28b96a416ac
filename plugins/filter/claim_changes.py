# Copyright: homelab.mlflow_k3s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: claim_changes
author: homelab.mlflow_k3s contributors
version_added: "0.2.0"
short_description: What the API server would refuse in an update of a PersistentVolumeClaim
description:
  - Compares a rendered claim with the live one and returns one sentence per change the
    Kubernetes API server refuses, naming the variable that made it; an empty list when
    the update is accepted.
  - A claim's spec is immutable except its storage request, which may only grow, only on
    a bound claim, and only where its StorageClass sets C(allowVolumeExpansion)
    (ValidatePersistentVolumeClaimUpdate and the PersistentVolumeClaimResize admission
    plugin of Kubernetes).
  - A rendered claim without C(storageClassName) keeps the class the live claim was given
    (the default class, assigned at creation), as a client-side apply does.
positional: _input, live, storage_classes, variables
options:
  _input:
    description: The rendered claim.
    type: dict
    required: true
  live:
    description: The live claim, or none.
    type: dict
  storage_classes:
    description: The cluster's StorageClass objects.
    type: list
    elements: dict
  variables:
    description: The variables behind the claim, by field (C(size), C(class), C(access_mode)).
    type: dict
"""

EXAMPLES = r"""
problems: "{{ rendered_pvc | homelab.mlflow_k3s.claim_changes(live_pvc, classes, {'size': 'postgres_storage_size'}) }}"
"""

RETURN = r"""
_value:
  description: One sentence per refused change.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def _bytes(quantity):
    text = str(quantity)
    for suffix, factor in _SUFFIXES.items():
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * factor
    try:
        return float(text)
    except ValueError:
        raise AnsibleFilterError(f"not a storage quantity: {quantity!r}") from None


def claim_changes(wanted, live, storage_classes=None, variables=None):
    if not live:
        return []
    names = dict({"size": "the storage size", "class": "the storage class", "access_mode": "the access mode"},
                 **(variables or {}))
    want, have = wanted.get("spec", {}), live.get("spec", {})
    problems = []
    live_class = have.get("storageClassName") or ""
    if "storageClassName" in want and (want["storageClassName"] or "") != live_class:
        problems.append(f"{names['class']} {want['storageClassName']!r} is not the live claim's class {live_class!r}: "
                        "a claim's storage class never changes")
    if sorted(want.get("accessModes", [])) != sorted(have.get("accessModes", [])):
        problems.append(f"{names['access_mode']} {', '.join(want.get('accessModes', []))} is not the live claim's "
                        f"{', '.join(have.get('accessModes', []))}: a claim's access modes never change")
    size = want.get("resources", {}).get("requests", {}).get("storage")
    live_size = have.get("resources", {}).get("requests", {}).get("storage")
    capacity = live.get("status", {}).get("capacity", {}).get("storage", live_size)
    if size is not None and live_size is not None and _bytes(size) != _bytes(live_size):
        expandable = any(c.get("metadata", {}).get("name") == live_class and c.get("allowVolumeExpansion")
                         for c in storage_classes or [])
        if _bytes(size) < _bytes(capacity):
            problems.append(f"{names['size']} {size} is less than the live claim's {capacity}: a claim cannot shrink")
        elif not expandable:
            problems.append(f"{names['size']} {size} is more than the live claim's {live_size}, and its storage class "
                            f"{live_class!r} does not set allowVolumeExpansion: the claim cannot grow")
        elif live.get("status", {}).get("phase") != "Bound":
            problems.append(f"{names['size']} {size} is more than the live claim's {live_size}, which is not bound "
                            "to a volume yet: only a bound claim grows")
    return problems


class FilterModule:
    def filters(self):
        return {"claim_changes": claim_changes}
