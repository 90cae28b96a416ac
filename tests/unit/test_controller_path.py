"""Relative user paths are taken from the directory ansible-playbook was started in, not the
playbook's directory (where the pipe lookup's `pwd` runs)."""
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.homelab.mlflow_k3s.plugins.filter.controller_path import controller_path
from manifests import INVENTORY, ROOT, run_playbook


def test_absolute_and_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert controller_path("/srv/backups/") == "/srv/backups"
    assert controller_path("backups/x") == str(tmp_path / "backups" / "x")
    with pytest.raises(AnsibleFilterError):
        controller_path("")


def test_render_dir_relative_to_where_ansible_playbook_runs(tmp_path):
    variables = {"render_dir": "rendered", "mlflow_k3s_state_dir": str(tmp_path / "state"),
                 "mlflow_image_ref": "mlflow-k3s/mlflow:3.17.2-0123456789ab"}
    proc = run_playbook(ROOT / "playbooks" / "render.yml", INVENTORY, variables, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert list((tmp_path / "rendered" / "mlflow").glob("manifests.yaml"))
    assert not (ROOT / "playbooks" / "rendered").exists()
