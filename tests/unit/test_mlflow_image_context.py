"""The mlflow_image role's rendered build context and tag, without Docker: the role's
own validate and context tasks run on localhost with a fixed base image ID."""
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    mlflow_image_build_hosts: [localhost]
    __mlflow_image_build_host: localhost
    __mlflow_image_base_ids: {amd64: "sha256:0123456789abcdef"}
  tasks:
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow_image
        tasks_from: "{{ item }}"
      loop: [validate, context, context_write]
    - ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'ref': mlflow_image_ref, 'containerd_ref': __mlflow_image_containerd_ref,
                      'context': __mlflow_image_context} | to_json }}"
        mode: "0644"
"""


def render(tmp_path, **extra):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    out = tmp_path / ("out-%d.json" % len(list(tmp_path.glob("out-*.json"))))
    args = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(play),
            "-e", "ansible_python_interpreter=%s" % sys.executable,
            "-e", "out=%s" % out, "-e", "mlflow_image_build_dir=%s" % (tmp_path / "build")]
    for key, value in extra.items():
        args += ["-e", json.dumps({key: value})]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    rendered = json.loads(out.read_text())
    # What the role wrote to the build host is exactly what was hashed.
    tag = rendered["ref"].rsplit(":", 1)[1]
    for name, content in rendered["context"].items():
        assert (tmp_path / "build" / "context" / tag / name).read_text() == content
    return rendered


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    return render(tmp_path_factory.mktemp("default"))


def test_tag_is_version_and_context_hash(default):
    name, tag = default["ref"].rsplit(":", 1)
    assert name == "localhost/homelab/mlflow"
    assert re.fullmatch(r"3\.17\.2-[0-9a-f]{12}", tag)
    assert default["containerd_ref"] == default["ref"]


def test_same_inputs_same_tag(tmp_path, default):
    assert render(tmp_path)["ref"] == default["ref"]


@pytest.mark.parametrize("change", [
    # An untested version builds only with pins given.
    {"mlflow_image_mlflow_version": "3.17.1", "mlflow_image_constraints": ["alembic==1.20.1"]},
    {"mlflow_image_extra_packages": ["boto3==1.40.0"]},
    {"mlflow_image_flavor": "full"},
    {"mlflow_image_uid": 20001},
    {"mlflow_image_db_driver": "psycopg2-binary==2.9.12"},
    {"__mlflow_image_base_ids": {"amd64": "sha256:fedcba9876543210"}},
    # A second architecture: every node's image changes tag with it (one tag for all).
    {"__mlflow_image_base_ids": {"amd64": "sha256:0123456789abcdef", "arm64": "sha256:aaaa"}},
])
def test_any_changed_input_gives_a_new_tag(tmp_path, default, change):
    changed = render(tmp_path, **change)["ref"]
    assert changed != default["ref"]
    if "mlflow_image_mlflow_version" in change:
        assert changed.rsplit(":", 1)[1].startswith("3.17.1-")


def test_dockerfile_runs_server_from_env_only(default):
    dockerfile = default["context"]["Dockerfile"]
    assert "${" not in "".join(line for line in dockerfile.splitlines() if line.startswith(("CMD", "ENTRYPOINT")))
    assert 'ENTRYPOINT ["/opt/mlflow/bin/dumb-init", "--", "/opt/mlflow/bin/mlflow"]' in dockerfile
    assert 'CMD ["server"]' in dockerfile
    assert "MLFLOW_HOST=0.0.0.0" in dockerfile
    assert "MLFLOW_DISABLE_TELEMETRY=true" in dockerfile and "DO_NOT_TRACK=true" in dockerfile
    assert "USER 10001:10001" in dockerfile
    assert "latest" not in dockerfile
    assert not re.search(r"(?i)password|BACKEND_STORE_URI=", dockerfile)
    # Multi-stage: pip runs in the build stage only, and the final stage drops pip.
    assert dockerfile.count("FROM ") == 2 and "pip uninstall" in dockerfile


def test_every_package_is_pinned(default):
    requirements = default["context"]["requirements.txt"].split()
    assert requirements[:5] == ["mlflow[auth]==3.17.2", "psycopg2-binary==2.9.13", "boto3==1.44.8",
                                "prometheus-flask-exporter==0.23.2", "dumb-init==1.2.5.post1"]
    constraints = [line for line in default["context"]["constraints.txt"].splitlines() if not line.startswith("#")]
    assert len(constraints) > 50 and all("==" in pin for pin in constraints)


def test_default_slim_flavor_installs_the_pinned_list_without_the_heavy_packages(default):
    slim = default
    assert "--no-deps" in slim["context"]["Dockerfile"]
    names = {pin.split("==")[0].split("[")[0].lower() for pin in slim["context"]["requirements.txt"].split()}
    # --no-deps ignores extras: the auth extra's packages must be pinned themselves.
    assert {"mlflow", "mlflow-skinny", "gunicorn", "sqlalchemy", "alembic", "pandas", "numpy", "flask-wtf"} <= names
    assert not names & {"pyarrow", "scipy", "scikit-learn", "matplotlib", "skops", "docker"}


def test_extra_packages_get_their_own_layer_after_mlflow(tmp_path):
    extra = render(tmp_path, mlflow_image_extra_packages=["boto3==1.40.0"])
    dockerfile = extra["context"]["Dockerfile"]
    assert extra["context"]["requirements-extra.txt"].split() == ["boto3==1.40.0"]
    assert dockerfile.index("requirements.txt") < dockerfile.index("requirements-extra.txt")


def test_docker_hub_style_name_is_spelled_like_containerd(tmp_path):
    rendered = render(tmp_path, mlflow_image_name="homelab/mlflow")
    assert rendered["containerd_ref"] == "docker.io/" + rendered["ref"]
