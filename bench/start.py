"""Where the default server's start goes: the mlflow role's rendered manifests (the default
image, `mlflow_server: gunicorn-asgi`, 4 workers, the login on) started as containers on a
migrated database (tests/stack/kube_to_docker.py; PostgreSQL is the stand-in image), and
the phases read from the server's log with Docker's timestamps. Prints figures.

    .venv/bin/python bench/start.py [--reps 3]

Phases: the `mlflow server` command imports MLflow, checks the stores and starts gunicorn
as a new process; gunicorn's master imports MLflow's app again (once, preload_app) and opens
the auth store; the workers fork and start their event loops; then the first 200 on /health.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench")]

from throughput import (PORT, KubeToDocker, Stack, build_mlflow_image, find, healthy_after_start,  # noqa: E402
                        remove_pod, render_servers)

# (phase, the log line that ends it; the first such line, or the last for "last ...").
MARKS = [("CLI imported MLflow", ""),  # the server's first log line
         ("CLI checked the stores", "_run_server("),  # MLflow's warning as it starts gunicorn
         ("master loaded the app", "Starting gunicorn"),  # logged after preload_app's import
         ("last worker serving", "Application startup complete")]


def timeline(stack, name):
    """{phase: seconds after the container's start}, from the log's timestamps."""
    container = stack.container(name)
    started = datetime.datetime.fromisoformat(container.attrs["State"]["StartedAt"][:26] + "+00:00")
    marks = {}
    for line in container.logs(timestamps=True).decode(errors="replace").splitlines():
        stamp, _sep, text = line.partition(" ")
        for phase, needle in MARKS:
            if needle in text and (phase not in marks or phase.startswith("last")):
                at = datetime.datetime.fromisoformat(stamp[:26] + "+00:00")
                marks[phase] = (at - started).total_seconds()
    return marks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    image_ref = build_mlflow_image()[0]
    docs = render_servers(image_ref)["ours"]
    runs = []
    with Stack("bench-start") as stack:
        kube = KubeToDocker(stack, docs)
        db = find(docs, "Deployment", "postgres")
        kube.run(db, "db-pod")
        stack.wait_exec("db-pod", db["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"])
        kube.run(find(docs, "Job"), "migration")
        assert stack.container("migration").wait(timeout=600)["StatusCode"] == 0, stack.logs("migration")
        for rep in range(args.reps):
            name = "ours-%d" % rep
            kube.run(find(docs, "Deployment", "mlflow"), name)
            healthy = healthy_after_start(stack, name, stack.url(name, PORT))
            runs.append(dict(timeline(stack, name), healthy=healthy))
            remove_pod(stack, name)
    print("image %s, %d starts on a migrated database; seconds after the container's start (median):" % (
        image_ref, args.reps))
    previous = 0.0
    for phase in [p for p, _needle in MARKS] + ["healthy"]:
        at = statistics.median(run[phase] for run in runs if phase in run)
        print("  %-22s %5.2f s  (+%.2f s)" % (phase, at, at - previous))
        previous = at


if __name__ == "__main__":
    main()
