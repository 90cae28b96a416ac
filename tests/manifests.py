"""Render the postgres and mlflow manifests with playbooks/render.yml (the roles' `render`
entry points) on the tests' own inventory and load them; shared by the L1, L3b tests and
bench/."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
INVENTORY = ROOT / "tests" / "hosts.yml"


def ansible_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    return env


def run_playbook(playbook, inventory, variables: dict, cwd=ROOT, env=None, timeout=600) -> subprocess.CompletedProcess:
    """ansible-playbook -i INVENTORY PLAYBOOK -e VARIABLES (as JSON), output captured."""
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), "-e", json.dumps(variables)],
        cwd=cwd, env=env or ansible_env(), capture_output=True, text=True, timeout=timeout, check=False)


def run_render(extra_vars: dict, out, inventory=INVENTORY) -> subprocess.CompletedProcess:
    """Render into out/postgres and out/mlflow (generated secrets under out/credentials)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    variables = {"render_dir": str(out), "mlflow_k3s_state_dir": str(out / "credentials")}
    return run_playbook(ROOT / "playbooks" / "render.yml", inventory, dict(variables, **extra_vars))


def load_dir(path) -> list:
    """The objects a role's `render` wrote, in apply order."""
    return [d for p in sorted(Path(path).glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def render(out, extra_vars: dict) -> list:
    """All objects, postgres' then mlflow's, each in apply order."""
    proc = run_render(extra_vars, out)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return load_dir(Path(out) / "postgres") + load_dir(Path(out) / "mlflow")
