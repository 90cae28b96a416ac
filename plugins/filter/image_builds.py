# Copyright: homelab.mlflow_k3s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: image_builds
author: homelab.mlflow_k3s contributors
version_added: "0.3.0"
short_description: Which host builds the MLflow image for which architecture, and which nodes get none
description:
  - The same file holds C(kube_arch), one machine's architecture as Kubernetes names it
    (C(x86_64 | homelab.mlflow_k3s.kube_arch) is C(amd64)).
  - Groups the nodes by architecture, in Kubernetes' naming (the C(kubernetes.io/arch)
    label, Go's GOARCH, which is also what the Docker Engine reports for an image).
  - Each architecture present is built by the listed build host of that architecture, or
    else by the first node of it; an architecture in O(skip) is built by nobody and its
    nodes are excluded (the MLflow workloads are kept off them).
  - Raises an error naming the host or the variable for a machine with no known
    architecture, two build hosts of one architecture, or an architecture both skipped and
    given a build host.
positional: _input, nodes, build_hosts, skip
options:
  _input:
    description: The machine (C(ansible_architecture)) of every node and listed build host, by host.
    type: dict
    required: true
  nodes:
    description: The cluster's nodes, servers first.
    type: list
    elements: str
  build_hosts:
    description: O(mlflow_image_build_hosts), hosts that build for their own architecture.
    type: list
    elements: str
  skip:
    description: O(mlflow_image_skip_architectures), architectures nobody builds for.
    type: list
    elements: str
"""

EXAMPLES = r"""
plan: "{{ machines | homelab.mlflow_k3s.image_builds(groups['k3s_cluster'], ['localhost'], ['arm']) }}"
"""

RETURN = r"""
_value:
  description:
    - C(builds), by architecture, C({host, nodes}); C(excluded), by architecture, the nodes;
      C(node_arch), each node's architecture.
  type: dict
"""

from ansible.errors import AnsibleFilterError

# ansible_architecture (uname -m) -> GOARCH, for the machines k3s is released for.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "s390x": "s390x"}


def _arch(host, machines):
    machine = machines.get(host)
    if machine not in GOARCH:
        raise AnsibleFilterError(
            "%s has architecture %r: the MLflow image is built for %s only (uname -m)"
            % (host, machine, ", ".join(sorted(GOARCH))))
    return GOARCH[machine]


def image_builds(machines, nodes, build_hosts=(), skip=()):
    if not isinstance(machines, dict):
        raise AnsibleFilterError("image_builds: input must be a dict of host -> machine")
    node_arch = {node: _arch(node, machines) for node in nodes}
    chosen = {}
    for host in build_hosts:
        arch = _arch(host, machines)
        if arch in chosen:
            raise AnsibleFilterError(
                "mlflow_image_build_hosts lists %s and %s, both %s: list one build host per architecture"
                % (chosen[arch], host, arch))
        if arch in skip:
            raise AnsibleFilterError(
                "mlflow_image_build_hosts lists %s to build for %s, which mlflow_image_skip_architectures "
                "skips: keep one of the two" % (host, arch))
        chosen[arch] = host
    builds, excluded = {}, {}
    for node in nodes:
        arch = node_arch[node]
        if arch in skip:
            excluded.setdefault(arch, []).append(node)
        else:
            builds.setdefault(arch, {"host": chosen.get(arch, node), "nodes": []})["nodes"].append(node)
    return {"builds": builds, "excluded": excluded, "node_arch": node_arch}


def kube_arch(machine, host="the host"):
    """One machine's architecture as Kubernetes names it."""
    return _arch(host, {host: machine})


class FilterModule:
    def filters(self):
        return {"image_builds": image_builds, "kube_arch": kube_arch}
