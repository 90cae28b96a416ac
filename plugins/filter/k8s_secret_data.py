# Copyright: homelab.mlflow_k3s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: k8s_secret_data
author: homelab.mlflow_k3s contributors
version_added: "0.1.0"
short_description: Base64-encode a mapping of strings for a Kubernetes Secret's data
description:
  - Returns the same keys with each value UTF-8 encoded, then base64-encoded, ready for the
    C(data) field of a C(v1/Secret).
  - Keys must follow the Secret key rule C([-._a-zA-Z0-9]+) (at most 253 characters) and
    values must be strings; otherwise an error names the key. Values never appear in messages.
positional: _input
options:
  _input:
    description: Mapping of Secret key to plain-text value.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Render the DB-URI Secret's data
  ansible.builtin.set_fact:
    mlflow_db_secret_data: "{{ {'database_uri': mlflow_db_uri} | homelab.mlflow_k3s.k8s_secret_data }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The mapping with base64-encoded values.
  type: dict
"""

import base64
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

KEY_RULE = re.compile(r"[-._a-zA-Z0-9]+")


def _fail(msg):
    raise AnsibleFilterError("k8s_secret_data: " + msg)


def k8s_secret_data(data):
    """Base64-encode every value of a Secret-key → string mapping."""
    if not isinstance(data, Mapping):
        _fail("input must be a mapping of Secret key to string, got %s" % type(data).__name__)
    encoded = {}
    for key, value in data.items():
        if not isinstance(key, str) or len(key) > 253 or not KEY_RULE.fullmatch(key):
            _fail("key %r is not a valid Secret key: expected 1-253 characters from [-._a-zA-Z0-9]" % (key,))
        if not isinstance(value, str):
            _fail("value of key %r must be a string, got %s" % (key, type(value).__name__))
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            _fail("value of key %r must be valid Unicode text" % key)
        encoded[key] = base64.b64encode(raw).decode("ascii")
    return encoded


class FilterModule:
    def filters(self):
        return {"k8s_secret_data": k8s_secret_data}
