"""Builds the MLflow image through the role (tests/runtime/build_image.yml)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_mlflow_image(flavor: str = "full", extra_vars: dict | None = None,
                       build_dir: str | None = None) -> tuple[str, float]:
    """Returns (image reference, seconds). Reuses the image when its tag exists. The
    rendered context stays in build_dir/context/<tag> when build_dir is given."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", os.path.join(ROOT, "ansible.cfg"))
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="mlflowimg-") as tmp:
        ref_file = os.path.join(tmp, "ref")
        args = ["ansible-playbook", "-i", "localhost,", "-c", "local",
                "-e", "ansible_python_interpreter=%s" % sys.executable,
                os.path.join(ROOT, "tests/runtime/build_image.yml"),
                "-e", "mlflow_image_ref_file=%s" % ref_file, "-e", "mlflow_image_flavor=%s" % flavor,
                "-e", "mlflow_image_build_dir=%s" % (build_dir or os.path.join(tmp, "build"))]
        for key, value in (extra_vars or {}).items():
            args += ["-e", "%s=%s" % (key, value)]
        started = time.monotonic()
        result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError("building the %s image failed:\n%s\n%s" % (flavor, result.stdout[-6000:], result.stderr[-2000:]))
        with open(ref_file) as f:
            return f.read().strip(), elapsed
