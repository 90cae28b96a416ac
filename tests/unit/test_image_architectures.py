"""A mixed-architecture cluster: who builds the MLflow image for which architecture, which
node imports which build, and which nodes are kept without it.

The filter is tested directly; the role's `plan` entry point and the postgres role's
`architectures` check run over an inventory of four hosts of three architectures. The
hosts are this machine (local connection): a one-line module stands in for `uname -m`
(the setup module's ansible_architecture), so each host reports the machine it is given.
"""
import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.mlflow_k3s.plugins.filter.image_builds import image_builds, kube_arch
from manifests import run_playbook

MACHINES = {"srv": "x86_64", "pi1": "aarch64", "pi2": "aarch64", "pi3": "armv7l", "localhost": "x86_64"}
NODES = ["srv", "pi1", "pi2", "pi3"]


def test_each_architecture_is_built_by_its_first_node_by_default():
    plan = image_builds(MACHINES, NODES)
    assert plan["builds"] == {"amd64": {"host": "srv", "nodes": ["srv"]},
                              "arm64": {"host": "pi1", "nodes": ["pi1", "pi2"]},
                              "arm": {"host": "pi3", "nodes": ["pi3"]}}
    assert plan["excluded"] == {}
    assert plan["node_arch"] == {"srv": "amd64", "pi1": "arm64", "pi2": "arm64", "pi3": "arm"}


def test_a_listed_build_host_builds_for_its_own_architecture_only():
    plan = image_builds(MACHINES, NODES, ["localhost", "pi2"])
    assert {arch: b["host"] for arch, b in plan["builds"].items()} == {"amd64": "localhost", "arm64": "pi2", "arm": "pi3"}


def test_a_skipped_architecture_is_built_by_nobody_and_its_nodes_are_excluded():
    plan = image_builds(MACHINES, NODES, [], ["arm"])
    assert sorted(plan["builds"]) == ["amd64", "arm64"]
    assert plan["excluded"] == {"arm": ["pi3"]}


@pytest.mark.parametrize("args, message", [
    ((["localhost", "srv"], []), "mlflow_image_build_hosts lists localhost and srv, both amd64"),
    ((["pi3"], ["arm"]), "mlflow_image_build_hosts lists pi3 to build for arm, which mlflow_image_skip_architectures skips"),
])
def test_contradicting_choices_are_refused(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        image_builds(MACHINES, NODES, *args)


def test_an_unknown_machine_is_named():
    with pytest.raises(AnsibleFilterError, match="pi9 has architecture 'mips'"):
        image_builds(dict(MACHINES, pi9="mips"), NODES + ["pi9"])
    assert kube_arch("aarch64") == "arm64"


FAKE_UNAME = '''#!/usr/bin/python3
# WANT_JSON (the arguments arrive as a JSON file)
# Stands in for `uname -m` in the setup module: reports the machine it is given.
import json, sys
args = json.load(open(sys.argv[1]))
print(json.dumps({"ansible_facts": {"architecture": args["machine"]}, "changed": False}))
'''

PLAY = """
- hosts: k3s_cluster
  gather_facts: false
  tasks:
    - name: Report each host's machine
      fake_uname:
        machine: "{{ machine }}"
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow_image
        tasks_from: plan
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.postgres
        tasks_from: architectures
    - ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'plan': __mlflow_image_plan, 'architectures': mlflow_image_architectures,
                      'excluded': mlflow_image_excluded} | to_json }}"
        mode: "0600"
      delegate_to: localhost
      run_once: true
"""


def run_plan(tmp_path, **variables):
    (tmp_path / "library").mkdir(exist_ok=True)
    (tmp_path / "library" / "fake_uname.py").write_text(FAKE_UNAME)
    (tmp_path / "play.yml").write_text(PLAY)
    host = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}
    inventory = {"all": {"children": {"k3s_cluster": {"children": {
        "k3s_server": {"hosts": {"srv": dict(host, machine="x86_64")}},
        "k3s_agent": {"hosts": {name: dict(host, machine=MACHINES[name]) for name in NODES[1:]}}}}}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    proc = run_playbook(tmp_path / "play.yml", tmp_path / "hosts.json", dict(variables, out=str(tmp_path / "out.json")))
    return proc, (json.loads((tmp_path / "out.json").read_text()) if proc.returncode == 0 else None)


def test_the_role_plans_two_architectures_and_keeps_mlflow_off_a_skipped_one(tmp_path):
    proc, out = run_plan(tmp_path, mlflow_image_skip_architectures=["arm"])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert out["architectures"] == ["amd64", "arm64"]
    assert out["excluded"] == {"arm": ["pi3"]}
    assert out["plan"]["builds"]["arm64"] == {"host": "pi1", "nodes": ["pi1", "pi2"]}


def test_a_postgres_image_missing_an_architecture_is_named_before_anything_changes(tmp_path):
    proc = run_plan(tmp_path, postgres_image_architectures=["amd64", "arm64"])[0]
    assert proc.returncode != 0
    assert "not for arm on pi3: choose an image built for every architecture of the cluster" in proc.stdout, proc.stdout[-3000:]
