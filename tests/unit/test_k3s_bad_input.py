"""Bad input to the k3s role fails at role start, before any host is contacted.

The inventory's hosts point at a closed port: a run that got past validation would
end UNREACHABLE (the positive control shows it does), so "failed with our message
and unreachable=0" proves the role stopped before touching a host.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = """
- name: Apply the k3s role
  hosts: k3s_server:k3s_agent
  gather_facts: false
  roles:
    - role: homelab.mlflow_k3s.k3s
"""
CLOSED = {"ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_connection": "ssh",
          "ansible_ssh_common_args": "-o ConnectTimeout=3 -o BatchMode=yes"}


def run(tmp_path, extra_vars, servers=("server1",), agents=("agent1",)):
    inventory = {"all": {"children": {"k3s_cluster": {"children": {
        "k3s_server": {"hosts": {name: dict(CLOSED) for name in servers}},
        "k3s_agent": {"hosts": {name: dict(CLOSED) for name in agents}},
    }}}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    variables = {"mlflow_k3s_state_dir": str(tmp_path / "credentials"),
                 "k3s_download_cache_dir": str(tmp_path / "cache"),
                 # The hosts' ansible_host is loopback, which agents could not join.
                 "k3s_api_endpoint": "k3s-api.example"}
    variables.update(extra_vars)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "hosts.json"),
         str(tmp_path / "play.yml"), "-e", json.dumps(variables)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    return result.returncode, result.stdout + result.stderr


def assert_stopped_before_hosts(tmp_path, rc, out, message):
    assert rc != 0, out
    assert message in " ".join(out.split()), out
    assert "UNREACHABLE" not in out and "unreachable=1" not in out, out
    assert "changed=0" in out and "changed=1" not in out, out
    assert not (tmp_path / "credentials").exists()


@pytest.mark.parametrize("extra_vars, servers, message", [
    ({"k3s_state": "installed"}, ("server1",),
     "value of k3s_state must be one of: present, absent, got: installed"),
    ({"k3s_version": "1.36.4"}, ("server1",),
     'k3s_version must be a full k3s release such as v1.36.4+k3s1 (v<major>.<minor>.<patch>+k3s<n>), got "1.36.4"'),
    ({"k3s_version": "v1.36.4"}, ("server1",), "k3s_version must be a full k3s release"),
    ({}, (), "the inventory group k3s_server_group (k3s_server) has no host: k3s needs at least one server"),
    ({"k3s_api_endpoint": ""}, ("server1",),
     'k3s_api_endpoint must be an address of a server that the agents (agent1) can reach, got ""'),
    ({"k3s_api_endpoint": "127.0.0.1"}, ("server1",),
     'k3s_api_endpoint must be an address of a server that the agents (agent1) can reach, got "127.0.0.1"'),
    ({"k3s_config": {"disable": ["traefik"]}}, ("server1",),
     "disable are server-only settings: move them from k3s_config"),
    ({"k3s_server_config": {"token": "x"}}, ("server1",), "token must not be set in k3s_config"),
    ({"k3s_server_config": {"agent-token-file": "/tmp/t"}}, ("server1",), "agent-token-file must not be set in k3s_config"),
    ({"k3s_token": "same-token-for-both", "k3s_agent_token": "same-token-for-both"}, ("server1",),
     "k3s_agent_token must be a string without spaces or line breaks, and not the server token (k3s_token)"),
], ids=["unknown-state", "version-without-v", "version-without-k3s-suffix", "no-server",
        "agent-no-endpoint", "agent-loopback-endpoint", "server-only-in-common", "token-in-config",
        "agent-token-file-in-config", "agent-token-is-server-token"])
def test_bad_input_fails_before_any_host(tmp_path, extra_vars, servers, message):
    rc, out = run(tmp_path, extra_vars, servers=servers)
    assert_stopped_before_hosts(tmp_path, rc, out, message)


def test_valid_input_reaches_the_hosts(tmp_path):
    # Positive control: the same inventory and playbook with valid input get past
    # validation and try to reach the hosts.
    rc, out = run(tmp_path, {})
    assert rc != 0
    assert "UNREACHABLE" in out, out
