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
positional: _input, default_wait_timeout
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
"""

EXAMPLES = r"""
batches: "{{ manifests | zip(definitions) | homelab.mlflow_k3s.apply_batches(300) }}"
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

from ansible.errors import AnsibleFilterError


def apply_batches(pairs, default_wait_timeout):
    batches = []
    for pair in pairs:
        try:
            entry, definition = pair
            kind, name = definition["kind"], definition["metadata"]["name"]
        except (TypeError, ValueError, KeyError) as e:
            raise AnsibleFilterError(f"apply_batches: expected (manifest entry, object) pairs, got {pair!r:.200}") from e
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
