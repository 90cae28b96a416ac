"""The k3s role's config.yaml for two servers and an agent, rendered by the role's own
facts, vars and template on the controller (no host is changed): embedded etcd on
the first server, the second server joining it, agents getting no server-only setting."""
import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = """
- name: Render config.yaml with the role's facts and template
  hosts: k3s_server:k3s_agent
  gather_facts: false
  tasks:
    - name: Load the role's vars and compute its facts
      ansible.builtin.include_role:
        name: homelab.mlflow_k3s.k3s
        tasks_from: facts.yml
        public: true
    - name: Render
      ansible.builtin.template:
        src: "{{ repo_root }}/roles/k3s/templates/config.yaml.j2"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.yaml"
        mode: "0600"
"""


def render(tmp_path, servers, agents, extra_vars=None):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {"children": {
        "k3s_server": {"hosts": {n: dict(local, k3s_node_name=n) for n in servers}},
        "k3s_agent": {"hosts": {n: dict(local, k3s_node_name=n) for n in agents}},
    }}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    variables = {"out_dir": str(tmp_path), "repo_root": ROOT, "k3s_api_endpoint": "k3s.example.lan",
                 "k3s_server_config": {"disable": ["traefik"]}, "k3s_config": {"kubelet-arg": ["max-pods=50"]}}
    variables.update(extra_vars or {})
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "hosts.json"),
         str(tmp_path / "play.yml"), "-e", json.dumps(variables)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return {n: yaml.safe_load((tmp_path / (n + ".yaml")).read_text()) for n in servers + agents}


def test_two_servers_use_embedded_etcd_and_agents_get_no_server_settings(tmp_path):
    cfg = render(tmp_path, ["s1", "s2"], ["a1"])
    assert cfg["s1"]["cluster-init"] is True and "server" not in cfg["s1"]
    assert cfg["s2"]["server"] == "https://k3s.example.lan:6443" and "cluster-init" not in cfg["s2"]
    for server in ("s1", "s2"):
        assert cfg[server]["disable"] == ["traefik"]
        assert "k3s.example.lan" in cfg[server]["tls-san"]
    agent = cfg["a1"]
    assert agent["server"] == "https://k3s.example.lan:6443"
    assert agent["kubelet-arg"] == ["max-pods=50"]
    assert not {"disable", "tls-san", "cluster-init", "write-kubeconfig-mode"} & set(agent)
    for node in cfg.values():
        assert node["token-file"] == "/etc/rancher/k3s/token" and "token" not in node
    # servers accept agents with the agent token; agents are never told of it
    assert cfg["s1"]["agent-token-file"] == cfg["s2"]["agent-token-file"] == "/etc/rancher/k3s/agent-token"
    assert "agent-token-file" not in agent and "agent-token" not in agent


def test_one_server_uses_sqlite_and_ipv6_endpoint_is_bracketed(tmp_path):
    cfg = render(tmp_path, ["s1"], ["a1"], {"k3s_api_endpoint": "fd00::10", "k3s_api_port": 7443})
    assert "cluster-init" not in cfg["s1"]
    assert cfg["s1"]["https-listen-port"] == 7443
    assert cfg["a1"]["server"] == "https://[fd00::10]:7443"
