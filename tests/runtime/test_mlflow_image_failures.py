"""Bad inputs fail before anything is built, naming the variable; a failed build
reports the failing step and the tail of its log."""
import io
import os
import re
import subprocess
import sys
import tarfile
import uuid

import docker
import pytest

from images import ROOT

PLAY = """
- hosts: k3s_cluster
  gather_facts: false
  roles:
    - role: homelab.mlflow_k3s.mlflow_image
"""


def _run(tmp_path, **extra):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    inventory = tmp_path / "hosts.yml"
    # No k3s node is reached: every case here stops on the build host (the controller).
    inventory.write_text("k3s_cluster:\n  children:\n    k3s_server:\n      hosts:\n        localhost:\n"
                         "          ansible_connection: local\n"
                         "          ansible_python_interpreter: %s\n" % sys.executable)
    build_dir = tmp_path / "build"
    args = ["ansible-playbook", "-i", str(inventory), str(playbook),
            "-e", "{\"mlflow_image_build_hosts\": [\"localhost\"]}", "-e", "mlflow_image_pull_base=false",
            "-e", "mlflow_image_build_dir=%s" % build_dir,
            "-e", "mlflow_image_name=localhost/mlflowimg-failures/mlflow",
            "-e", "mlflow_image_base=mlflow-k3s-test/python-base:bookworm"]
    for key, value in extra.items():
        args += ["-e", "%s=%s" % (key, value)]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return result, build_dir


def _nothing_built(build_dir):
    assert not (build_dir / "context").exists()
    assert docker.from_env().images.list(name="localhost/mlflowimg-failures/mlflow") == []


@pytest.mark.parametrize("variable,value,expected", [
    ("mlflow_image_builder", "podman", "mlflow_image_builder"),
    ("mlflow_image_mlflow_version", "3.17", "mlflow_image_mlflow_version must be a release version"),
    ("mlflow_image_mlflow_version", "latest", "mlflow_image_mlflow_version must be a release version"),
    ("mlflow_image_extra_packages", '["boto3"]', "mlflow_image_extra_packages must be pinned"),
    ("mlflow_image_base", "mlflowimg-no-such-base:1", "mlflow_image_base 'mlflowimg-no-such-base:1' is not on the build host"),
])
def test_bad_input_fails_before_building(tmp_path, variable, value, expected):
    result, build_dir = _run(tmp_path, **{variable: value})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in " ".join(output.split()), output[-3000:]
    _nothing_built(build_dir)


@pytest.mark.parametrize("flavor", ["full", "slim"])
def test_an_untested_version_is_refused_without_pins(tmp_path, flavor):
    result, build_dir = _run(tmp_path, mlflow_image_flavor=flavor, mlflow_image_mlflow_version="3.1.0")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "mlflow_image_mlflow_version 3.1.0 has no tested pin set" in output
    _nothing_built(build_dir)


@pytest.fixture
def empty_base():
    # An image with no files at all: the first RUN of the Dockerfile cannot start.
    client = docker.from_env()
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("etc")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    tag = "localhost/mlflowimg-empty-base:%s" % uuid.uuid4().hex[:6]
    subprocess.run(["docker", "import", "-", tag], input=data.getvalue(), check=True, capture_output=True)
    yield tag
    client.images.remove(tag, force=True)


def test_failed_build_reports_step_and_log_tail(tmp_path, empty_base):
    result = _run(tmp_path, mlflow_image_base=empty_base)[0]
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(r"Failing step: Step [0-9]+/[0-9]+ : RUN python3 -m venv /opt/mlflow", output), output[-4000:]
    assert "/bin/sh: no such file or directory" in output
    assert "lines of the build log" in output
    assert docker.from_env().images.list(name="localhost/mlflowimg-failures/mlflow") == []
