# Copyright: homelab.mlflow_k3s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: unknown_variables
author: homelab.mlflow_k3s contributors
version_added: "0.2.0"
short_description: Find variables with a role's prefix that no role of the collection knows
description:
  - Takes variable names (for example the keys of a host's C(hostvars)) and returns one message for each name that
    starts with a prefix of this collection (a role's name and C(_), or the prefix of a name in O(known)) but is
    neither an option of any role's C(meta/argument_specs.yml) nor in O(known). Each message names the nearest known
    variable, so a typo such as C(mlflow_node_port) reads "did you mean mlflow_nodeport?".
  - Names starting with C(_) (internal variables and registered results) are never reported.
  - The argument specs are read from the collection's own C(roles/) directory.
positional: _input
options:
  _input:
    description: Variable names to check.
    type: list
    elements: str
    required: true
  known:
    description: Further known names (playbook variables, facts the roles publish); their prefixes are checked too.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Refuse unknown variables
  ansible.builtin.assert:
    that: _unknown | length == 0
    fail_msg: "{{ _unknown | join(' ') }}"
  vars:
    _unknown: "{{ hostvars[inventory_hostname] | list | homelab.mlflow_k3s.unknown_variables(known=['backup_dir']) }}"
"""

RETURN = r"""
_value:
  description: One message per unknown variable, sorted by name; empty when every name is known.
  type: list
  elements: str
"""

import difflib
from pathlib import Path

import yaml

from ansible.errors import AnsibleFilterError

ROLES = Path(__file__).resolve().parents[2] / "roles"


def role_options():
    """{role name: set of option names over all its entry points}."""
    options = {}
    for spec_file in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        specs = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs") or {}
        names = options.setdefault(spec_file.parent.parent.name, set())
        for entry in specs.values():
            names.update((entry or {}).get("options") or {})
    return options


def unknown_variables(names, known=()):
    if not isinstance(names, (list, tuple, set)) and not hasattr(names, "__iter__"):
        raise AnsibleFilterError("unknown_variables: input must be a list of variable names")
    options = role_options()
    if not options:
        raise AnsibleFilterError("unknown_variables: no argument specs found under %s" % ROLES)
    known_names = set(known).union(*options.values())
    prefixes = {role + "_" for role in options if not role.startswith("_")}
    prefixes |= {name.split("_", 1)[0] + "_" for name in known if "_" in name}
    messages = []
    for name in sorted(set(map(str, names))):
        if name.startswith("_") or name in known_names or not any(name.startswith(p) for p in prefixes):
            continue
        close = difflib.get_close_matches(name, sorted(known_names), n=1, cutoff=0.6)
        hint = "did you mean %s?" % close[0] if close else "see the roles' README or ansible-doc -t role."
        messages.append("%s is not a variable of homelab.mlflow_k3s: %s" % (name, hint))
    return messages


class FilterModule:
    def filters(self):
        return {"unknown_variables": unknown_variables}
