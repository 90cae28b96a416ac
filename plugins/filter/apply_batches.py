# Copyright: homelab.mlflow_k3s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: apply_batches
author: homelab.mlflow_k3s contributors
version_added: "0.3.0"
short_description: Groups a role's manifests into as few kubernetes.core.k8s calls as the order allows
description:
  - Takes the manifest entries of a role (C(template), C(state), C(wait_condition),
    C(wait_timeout), C(secret)) zipped with their rendered objects, in apply order, and
    joins neighbours that are applied the same way into one batch, so that one
    C(kubernetes.core.k8s) call applies and waits for each of them in turn.
  - The order is kept and only neighbours are joined; objects that carry secrets (a
    Secret, or an entry marked C(secret)) are never in a batch with objects that do not,
    so hiding a batch from the log hides nothing else.
  - Given the live objects, it leaves out each object that a rerun has nothing to do for,
    that is one that is live, was applied last from this very definition (its last-applied
    annotation), has every field of the definition equal, is not being deleted, and is
    ready as C(kubernetes.core.k8s) would wait for it (its own readiness checks). An object
    that is gone is left out when its state is C(absent). Fields the API server adds
    (defaults, status) do not count as a difference; a list the definition sets must match
    in length.
positional: _input, default_wait_timeout, live
options:
  _input:
    description: Pairs of (manifest entry, rendered object), in apply order.
    type: list
    elements: list
    required: true
  default_wait_timeout:
    description: The wait timeout of entries that give none.
    type: int
    required: true
  live:
    description:
      - The live object of each manifest, in the same order, or null where there is none.
      - Without it every object is applied.
    type: list
    elements: dict
"""

EXAMPLES = r"""
batches: "{{ manifests | zip(definitions) | homelab.mlflow_k3s.apply_batches(300) }}"
# a rerun: only what differs from the live objects, or is not ready yet
rerun_batches: "{{ manifests | zip(definitions) | homelab.mlflow_k3s.apply_batches(300, live_objects) }}"
"""

RETURN = r"""
_value:
  description: The batches, in apply order.
  type: list
  elements: dict
  contains:
    state:
      description: C(present) or C(absent).
    wait_condition:
      description: The entries' wait condition, or none.
    wait_timeout:
      description: Seconds to wait for each object.
    secret:
      description: Whether the batch carries secrets.
    definitions:
      description: The objects.
    label:
      description: Kind/name of each object, for the task's label.
"""

import json

from ansible.errors import AnsibleFilterError

try:
    from kubernetes.dynamic.resource import ResourceInstance
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.waiter import RESOURCE_PREDICATES, custom_condition
except ImportError as e:
    KUBERNETES_IMPORT_ERROR = e
else:
    KUBERNETES_IMPORT_ERROR = None

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _covers(live, wanted):
    """Every field of `wanted` is in `live` with the same value; lists of the same length."""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(k in live and _covers(live[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(live, list) and len(live) == len(wanted) and all(map(_covers, live, wanted))
    return live == wanted


def _ready(entry, live):
    """kubernetes.core.k8s's own wait, asked once of the live object."""
    if KUBERNETES_IMPORT_ERROR is not None:
        raise AnsibleFilterError(f"apply_batches: the kubernetes Python client is needed: {KUBERNETES_IMPORT_ERROR}")
    instance = ResourceInstance(None, live)
    if entry.get("wait_condition"):
        return custom_condition(entry["wait_condition"], instance)
    predicate = RESOURCE_PREDICATES.get(live["kind"])
    return predicate is None or predicate(instance)


def settled(entry, definition, live):
    """Whether applying `definition` and waiting for it would do nothing."""
    if (entry.get("state") or "present") == "absent":
        return live is None
    if not live or live["metadata"].get("deletionTimestamp"):
        return False
    last_applied = live["metadata"].get("annotations", {}).get(LAST_APPLIED)
    return (last_applied is not None and json.loads(last_applied) == definition
            and _covers(live, definition) and _ready(entry, live))


def apply_batches(pairs, default_wait_timeout, live=None):
    if live is not None and len(live) != len(pairs):
        raise AnsibleFilterError(f"apply_batches: expected one live object (or null) per manifest: "
                                 f"{len(pairs)} manifests, {len(live)} live")
    batches = []
    for i, pair in enumerate(pairs):
        try:
            entry, definition = pair
            kind, name = definition["kind"], definition["metadata"]["name"]
        except (TypeError, ValueError, KeyError) as e:
            raise AnsibleFilterError(f"apply_batches: expected (manifest entry, object) pairs, got {pair!r:.200}") from e
        if live is not None and settled(entry, definition, live[i]):
            continue
        key = {
            "state": entry.get("state") or "present",
            "wait_condition": entry.get("wait_condition"),
            "wait_timeout": int(entry.get("wait_timeout") or default_wait_timeout),
            "secret": kind == "Secret" or bool(entry.get("secret", False)),
        }
        if batches and all(batches[-1][k] == v for k, v in key.items()):
            batches[-1]["definitions"].append(definition)
            batches[-1]["label"] += f", {kind}/{name}"
        else:
            batches.append(dict(key, definitions=[definition], label=f"{kind}/{name}"))
    return batches


class FilterModule:
    def filters(self):
        return {"apply_batches": apply_batches}
