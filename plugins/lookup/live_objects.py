# Copyright: homelab.mlflow_k3s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: live_objects
author: homelab.mlflow_k3s contributors (@homelab)
version_added: "0.3.0"
short_description: The live copy of each of a list of Kubernetes objects, in one lookup
description:
  - For each definition given, the object of the same apiVersion, kind, namespace and name
    as the API server holds it, or null where there is none.
  - Each read is the C(kubernetes.core.k8s) lookup's, with its client (and its cache) kept
    for the whole list, so reading a role's objects costs one task on the controller
    instead of one module run per object.
  - An object of a kind the API server does not serve (a custom resource whose definition
    is not installed) does not exist, so it is null.
options:
  _terms:
    description: The definitions (dicts with apiVersion, kind and metadata.name).
    required: true
    type: list
    elements: dict
  kubeconfig:
    description: The kubeconfig file to connect with.
    type: path
    required: true
requirements:
  - kubernetes (the Python client), as for kubernetes.core
"""

EXAMPLES = r"""
live: "{{ query('homelab.mlflow_k3s.live_objects', *definitions, kubeconfig=mlflow_k3s_kubeconfig) }}"
"""

RETURN = r"""
_list:
  description: The live objects, in the order of the definitions; null for each that does not exist.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

try:
    from kubernetes.dynamic.exceptions import ResourceNotFoundError
    from ansible_collections.kubernetes.core.plugins.lookup.k8s import KubernetesLookup
except ImportError as e:
    KUBERNETES_IMPORT_ERROR = e
else:
    KUBERNETES_IMPORT_ERROR = None


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if KUBERNETES_IMPORT_ERROR is not None:
            raise AnsibleLookupError(f"live_objects needs the kubernetes.core collection: {KUBERNETES_IMPORT_ERROR}")
        self.set_options(var_options=variables, direct=kwargs)
        kubeconfig = self.get_option("kubeconfig")
        live = []
        for definition in terms:
            if not isinstance(definition, dict) or "kind" not in definition:
                raise AnsibleLookupError(f"live_objects: expected Kubernetes object definitions, got {definition!r:.200}")
            try:
                found = KubernetesLookup().run([], resource_definition=definition, kubeconfig=kubeconfig)
            except ResourceNotFoundError:
                found = []  # a kind the API server does not serve (a CRD not installed): no such object
            live.append(found[0] if found else None)
        return live
