"""The mlflow role's `connection` entry point: the URL verify.yml and the site report use is
the NodePort of the first server, wherever the agents are listed in k3s_cluster."""
import json

from manifests import run_playbook

PLAYBOOK = """
- hosts: k3s_server[0]
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow
        tasks_from: connection
    - ansible.builtin.copy:
        content: "{{ mlflow_connection | ansible.builtin.to_json }}"
        dest: "{{ out }}"
        mode: "0600"
      delegate_to: localhost
"""


def test_url_is_the_first_servers_nodeport_with_an_agent_listed_first(tmp_path):
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    inventory = {"k3s_cluster": {"children": {
        "k3s_agent": {"hosts": {"pi-agent": {"ansible_host": "192.0.2.20"}}},
        "k3s_server": {"hosts": {"server1": dict(local, ansible_host="192.0.2.10")}}}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    variables = {"mlflow_k3s_state_dir": str(tmp_path / "state"), "out": str(tmp_path / "connection.json")}
    proc = run_playbook(tmp_path / "play.yml", tmp_path / "hosts.json", variables)
    assert proc.returncode == 0, proc.stdout[-3000:]
    connection = json.loads((tmp_path / "connection.json").read_text())
    assert connection["url"] == "http://192.0.2.10:30001"
    assert connection["urls"] == ["http://192.0.2.20:30001", "http://192.0.2.10:30001"]
