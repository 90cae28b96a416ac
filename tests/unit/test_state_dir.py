"""Issue 11: the controller's state (credentials, kubeconfig, backups) never lands where git
looks, with the default inventory, the examples inventory or an inventory in another folder."""
import shutil
import subprocess

import pytest

from manifests import ROOT, run_playbook

PLAYBOOK = """
- hosts: k3s_server[0]
  gather_facts: false
  roles:
    - homelab.mlflow_k3s.mlflow_k3s
  tasks:
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow_k3s
        tasks_from: state_dir
    - ansible.builtin.file:
        path: "{{ mlflow_k3s_state_dir }}/backups/20261203T000000Z"
        state: directory
        mode: "0700"
      delegate_to: localhost
      run_once: true
    # what the roles write there: a token, and a backup (the default backup_dir is inside)
    - ansible.builtin.copy:
        content: "not for git\\n"
        dest: "{{ mlflow_k3s_state_dir }}/{{ item }}"
        mode: "0600"
      loop: [k3s-token, backups/20261203T000000Z/database.dump]
      delegate_to: localhost
      run_once: true
"""


@pytest.mark.parametrize("inventory", ["inventory", "examples/multi-node.yml", "elsewhere/lab/hosts.yml"])
def test_the_state_directory_is_ignored_by_git(tmp_path, inventory):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copytree(ROOT / "inventory", checkout / "inventory")
    shutil.copytree(ROOT / "examples", checkout / "examples")
    shutil.copy(ROOT / ".gitignore", checkout / ".gitignore")
    (checkout / "elsewhere" / "lab").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "multi-node.yml", checkout / "elsewhere" / "lab" / "hosts.yml")
    (checkout / "play.yml").write_text(PLAYBOOK)
    git = ["git", "-C", str(checkout)]
    subprocess.run(git + ["init", "-q"], check=True)
    proc = run_playbook(checkout / "play.yml", checkout / inventory, {}, cwd=checkout)
    assert proc.returncode == 0, proc.stdout[-3000:]
    status = subprocess.run(git + ["status", "--porcelain", "--untracked-files=all"], capture_output=True,
                            text=True, check=True).stdout
    assert "k3s-token" not in status and "database.dump" not in status, status
    ignored = subprocess.run(git + ["status", "--porcelain", "--ignored", "--untracked-files=all"],
                             capture_output=True, text=True, check=True).stdout
    assert "k3s-token" in ignored and "database.dump" in ignored, ignored
