# Copyright: homelab.mlflow_k3s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: controller_path
author: homelab.mlflow_k3s contributors
version_added: "0.2.0"
short_description: Make a controller path absolute from the directory ansible-playbook was started in
description:
  - An absolute path is returned unchanged (normalised); a relative one is joined to the
    working directory of the ansible-playbook process.
  - The C(pipe) lookup cannot tell that directory (it runs its command in the playbook's
    directory), nor can C(PWD) (not updated when a parent process changes directory).
positional: _input
options:
  _input:
    description: The path.
    type: str
    required: true
"""

EXAMPLES = r"""
restore_dir: "{{ restore_from | homelab.mlflow_k3s.controller_path }}"
"""

RETURN = r"""
_value:
  description: The absolute path.
  type: str
"""

import os

from ansible.errors import AnsibleFilterError


def controller_path(value):
    if not isinstance(value, str) or not value:
        raise AnsibleFilterError(f"controller_path needs a non-empty path, got {value!r}")
    return os.path.abspath(value)


class FilterModule:
    def filters(self):
        return {"controller_path": controller_path}
