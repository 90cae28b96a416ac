"""Image size and cold build time: the role's MLflow image (full and slim flavors)
against a naive `pip install mlflow psycopg2-binary` image on the same base.
Not a test: prints figures. Each build uses --no-cache (pip still downloads).

    .venv/bin/python bench/image_size.py [--repeat N] [--base IMAGE]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "runtime"))
from images import TEST_BASE, build_mlflow_image, naive_context  # noqa: E402


def docker_build(context, tag):
    started = time.monotonic()
    subprocess.run(["docker", "build", "--no-cache", "-q", "-t", tag, context], check=True, capture_output=True)
    seconds = time.monotonic() - started
    size = int(subprocess.check_output(["docker", "image", "inspect", "-f", "{{.Size}}", tag]).strip())
    subprocess.run(["docker", "image", "rm", tag], check=True, capture_output=True)
    return seconds, size


def remove_images(repository):
    """Untags the repository's images (an image another name shares stays)."""
    refs = subprocess.check_output(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repository],
                                   text=True).split()
    if refs:
        subprocess.run(["docker", "image", "rm", *refs], check=True, capture_output=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--base", default=TEST_BASE)
    parser.add_argument("--version", default="3.17.2")
    args = parser.parse_args()

    results = {}
    # The role writes its build context only when it builds: an image name of the bench's
    # own, emptied first, makes it build (from Docker's cache) and leave the context.
    name = "localhost/mlflowimg-bench/role"
    remove_images(name)
    with tempfile.TemporaryDirectory(prefix="mlflowimg-bench-") as tmp:
        contexts = {}
        for flavor in ("full", "slim"):
            settings = {"mlflow_image_base": args.base, "mlflow_image_mlflow_version": args.version,
                        "mlflow_image_name": name}
            ref = build_mlflow_image(flavor, settings, build_dir=os.path.join(tmp, flavor))[0]
            contexts["role, " + flavor] = os.path.join(tmp, flavor, "context", ref.rsplit(":", 1)[1])
        contexts["naive pip install"] = naive_context(os.path.join(tmp, "naive"), args.version, args.base)
        for run in range(args.repeat):
            for label, context in contexts.items():
                tag = "localhost/mlflowimg-bench/%s:run%d" % (label.replace(", ", "-").replace(" ", "-"), run)
                results.setdefault(label, []).append(docker_build(context, tag))
    remove_images(name)

    print("\nMLflow %s on %s, %d cold build(s) each (median):" % (args.version, args.base, args.repeat))
    print("%-20s %12s %14s" % ("image", "size (MB)", "build (s)"))
    for label, runs in results.items():
        print("%-20s %12.0f %14.0f" % (label, statistics.median(size for _seconds, size in runs) / 1e6,
                                       statistics.median(seconds for seconds, _size in runs)))


if __name__ == "__main__":
    main()
