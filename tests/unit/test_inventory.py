"""The default inventory is this machine alone; the multi-node example parses on its own."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def inventory(path):
    out = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", os.path.join(ROOT, path), "--list"],
                         cwd=ROOT, capture_output=True, text=True, check=True,
                         env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    return json.loads(out.stdout)


def hosts(data, group):
    found = set(data.get(group, {}).get("hosts", []))
    for child in data.get(group, {}).get("children", []):
        found |= hosts(data, child)
    return found


def test_default_inventory_is_this_machine_only():
    data = inventory("inventory")
    assert hosts(data, "k3s_server") == {"localhost"}
    assert hosts(data, "k3s_agent") == set()
    assert data["_meta"]["hostvars"]["localhost"]["ansible_connection"] == "local"


def test_multi_node_example():
    data = inventory("examples/multi-node.yml")
    assert hosts(data, "k3s_server") == {"server1", "server2", "server3"}
    assert hosts(data, "k3s_agent") == {"agent1", "agent2"}
