"""Builds the MLflow image through the role (tests/runtime/build_image.yml), and the naive
image it is measured against."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_mlflow_image(flavor: str | None = None, extra_vars: dict | None = None,
                       build_dir: str | None = None) -> tuple[str, float]:
    """Returns (image reference, seconds). Reuses the image when its tag exists. The
    rendered context stays in build_dir/context/<tag> when build_dir is given. No
    flavor: the role's default."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", os.path.join(ROOT, "ansible.cfg"))
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="mlflowimg-") as tmp:
        ref_file = os.path.join(tmp, "ref")
        args = ["ansible-playbook", "-i", "localhost,", "-c", "local",
                "-e", "ansible_python_interpreter=%s" % sys.executable,
                os.path.join(ROOT, "tests/runtime/build_image.yml"),
                "-e", "mlflow_image_ref_file=%s" % ref_file,
                "-e", "mlflow_image_build_dir=%s" % (build_dir or os.path.join(tmp, "build"))]
        if flavor:
            args += ["-e", "mlflow_image_flavor=%s" % flavor]
        for key, value in (extra_vars or {}).items():
            args += ["-e", "%s=%s" % (key, value)]
        started = time.monotonic()
        result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError("building the %s image failed:\n%s\n%s" % (flavor or "default", result.stdout[-6000:], result.stderr[-2000:]))
        with open(ref_file) as f:
            return f.read().strip(), elapsed


# What a user would build by hand: MLflow and the Postgres driver. Pinned to the versions
# the role tested (its constraint list and driver), so the comparison stays the same run after run.
NAIVE_DOCKERFILE = """FROM {base}
COPY constraints.txt /
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -c /constraints.txt mlflow=={version} psycopg2-binary
ENV PATH=/opt/venv/bin:$PATH
CMD ["mlflow", "server", "--host", "0.0.0.0"]
"""
TEST_BASE = "mlflow-k3s-test/python-base:bookworm"  # tests/runtime/build_image.yml's base


def naive_context(directory: str, version: str = "3.17.2", base: str = TEST_BASE) -> str:
    import yaml

    role = os.path.join(ROOT, "roles", "mlflow_image")
    with open(os.path.join(role, "vars", "main.yml")) as f:
        pins = yaml.safe_load(f)["__mlflow_image_tested_constraints"][version]
    with open(os.path.join(role, "defaults", "main.yml")) as f:
        pins = pins + [yaml.safe_load(f)["mlflow_image_db_driver"]]
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "constraints.txt"), "w") as f:
        f.write("\n".join(pins) + "\n")
    with open(os.path.join(directory, "Dockerfile"), "w") as f:
        f.write(NAIVE_DOCKERFILE.format(base=base, version=version))
    return directory


def build_naive_image(version: str = "3.17.2") -> str:
    """The naive image on the test base, tagged by its context (Docker's cache reuses it)."""
    with tempfile.TemporaryDirectory(prefix="mlflowimg-naive-") as tmp:
        context = naive_context(tmp, version)
        digest = hashlib.sha256()
        for name in ("Dockerfile", "constraints.txt"):
            with open(os.path.join(context, name), "rb") as f:
                digest.update(f.read())
        tag = "localhost/mlflow-k3s-runtime/naive:%s-%s" % (version, digest.hexdigest()[:12])
        subprocess.run(["docker", "build", "-q", "-t", tag, context], check=True, capture_output=True)
    return tag
