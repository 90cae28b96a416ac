"""The mlflow role's `connection` entry point: the URL verify.yml and the site report use is
the NodePort of the first server, wherever the agents are listed in k3s_cluster."""
import json
import subprocess

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


CLIENT_FILE_PLAYBOOK = """
- hosts: k3s_server[0]
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow
        tasks_from: connection
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow
        tasks_from: client_file
"""


def client_env(tmp_path, **variables):
    """Runs the connection and the client file, then sources mlflow.env in bash."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    inventory = {"k3s_cluster": {"children": {"k3s_server": {"hosts": {"server1": dict(local, ansible_host="192.0.2.10")}}}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(CLIENT_FILE_PLAYBOOK)
    state = tmp_path / "state"
    proc = run_playbook(tmp_path / "play.yml", tmp_path / "hosts.json", {"mlflow_k3s_state_dir": str(state), **variables})
    assert proc.returncode == 0, proc.stdout[-3000:]
    env_file = state / "mlflow.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    shown = subprocess.run(["bash", "-c", f"source {env_file} && env -0"], env={}, capture_output=True, check=True).stdout
    env = dict(line.split("=", 1) for line in shown.decode().split("\0") if line.startswith("MLFLOW_"))
    return env, proc.stdout, state


def test_the_client_file_logs_in_with_the_generated_admin_password(tmp_path):
    env, output, state = client_env(tmp_path)
    generated = (state / "mlflow-admin-password").read_text().split()[0]
    assert env == {"MLFLOW_TRACKING_URI": "http://192.0.2.10:30001", "MLFLOW_TRACKING_USERNAME": "admin",
                   "MLFLOW_TRACKING_PASSWORD": generated}
    assert generated not in output


def test_the_client_file_quotes_a_given_password(tmp_path):
    password = "it's $HOME `and` \"more\""
    env, output, _state = client_env(tmp_path, mlflow_admin_password=password)
    assert env["MLFLOW_TRACKING_PASSWORD"] == password
    assert "$HOME" not in output


def test_without_the_login_the_client_file_holds_the_url_only(tmp_path):
    env = client_env(tmp_path, mlflow_basic_auth_enabled=False)[0]
    assert env == {"MLFLOW_TRACKING_URI": "http://192.0.2.10:30001"}


def test_with_the_ingress_the_client_file_uses_https_and_trusts_the_local_ca(tmp_path):
    env, _output, state = client_env(tmp_path, mlflow_ingress_enabled=True, mlflow_ingress_host="mlflow.home.lan")
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.home.lan"
    assert env["MLFLOW_TRACKING_SERVER_CERT_PATH"] == str(state / "mlflow-ca.crt")


def test_with_s3_the_client_file_keeps_every_file_going_through_the_server(tmp_path):
    env = client_env(tmp_path, mlflow_artifacts_destination="s3://lab-artifacts/mlflow")[0]
    assert env["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] == "false"
    assert env["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] == "false"
