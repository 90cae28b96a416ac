"""Tracking throughput: our defaults against the original guide's configuration and
against the in-process ceiling, side by side in one run on the same machine.

- ours:    the postgres and mlflow roles' rendered manifests, started as containers
           (tests/stack/kube_to_docker.py) with the real image from the mlflow_image role;
           beside it the same manifests with mlflow_server: gunicorn (sync workers, Flask
           routes only), mlflow_server: uvicorn (MLflow's own server), and ours without its
           fast path for Flask routes (MLFLOW_K3S_FAST_PATH=false), to show what each costs
- guide:   the same image (without its TCP_NODELAY fix) and database server, `mlflow server
           --backend-store-uri … --default-artifact-root file:///… --host 0.0.0.0 --port 5000`
           and nothing else (the guide's other mistakes, e.g. postgres://, are left out so
           it runs at all)
- ceiling: the same operations in-process through MLflow's SqlAlchemyStore, run inside
           a container of the same image on the same network (no HTTP, no server)

The PostgreSQL is the stand-in image (Debian's PostgreSQL 15, see tests/images). Load:
bench/tracking_load.py with a process per client, logged in as the admin where the login is
on; beside each server's figures, how many of bench/endpoints.py's checks it serves. Every
configuration runs --reps times, interleaved; the table shows medians. Each level is bounded
in time and iterations.

    .venv/bin/python bench/throughput.py [--clients 1,16] [--seconds 12] [--reps 2]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "runtime"), str(ROOT / "tests" / "stack"), str(ROOT / "tests"), str(ROOT / "bench")]

from endpoints import check, served  # noqa: E402
from images import build_mlflow_image  # noqa: E402
from kube_to_docker import KubeToDocker, find  # noqa: E402
from manifests import render  # noqa: E402
from stack import Stack  # noqa: E402

LOAD = ROOT / "bench" / "tracking_load.py"
NODELAY_PTH = "import sysconfig; print(sysconfig.get_paths()['purelib'] + '/tcp_nodelay.pth')"
PORT = 5000
# The servers beside the guide's: name -> the role variables that make them.
SERVERS = {
    "ours": {},
    "ours-nofast": {"mlflow_extra_env": {"MLFLOW_K3S_FAST_PATH": "false"}},
    "gunicorn": {"mlflow_server": "gunicorn"},
    "uvicorn": {"mlflow_server": "uvicorn"},
}


def load(args, auth, *target):
    env = dict(os.environ, MLFLOW_TRACKING_USERNAME=auth[0], MLFLOW_TRACKING_PASSWORD=auth[1]) if auth else None
    proc = subprocess.run([sys.executable, str(LOAD), *target, "--clients", args.clients, "--processes",
                           "--seconds", str(args.seconds)], capture_output=True, text=True, check=True, env=env)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def memory(stack, name):
    """(MiB, processes) of a container: the sum of its processes' proportional set size
    (PSS counts pages shared between forked workers once), read from the host's /proc.
    Docker's own memory stats are empty on these machines (cgroup v1, cgroupfs)."""
    top = stack.container(name).top(ps_args="-o pid")
    pids = [int(p[0]) for p in top["Processes"]]
    pss_kb = 0
    for pid in pids:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            pss_kb += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    return round(pss_kb / 1024), len(pids)


def healthy_after_start(stack, name, url):
    """Seconds from the server container's start (Docker's StartedAt) to its first 200 on /health."""
    while True:
        stack._check_running(name)  # noqa: SLF001 - fails with the log if the server exited
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.05)
    answered = datetime.datetime.now(datetime.timezone.utc)
    started = datetime.datetime.fromisoformat(stack.container(name).attrs["State"]["StartedAt"][:26] + "+00:00")
    return (answered - started).total_seconds()


def measure_server(stack, name, start, args, auth=None):
    """Start a server, time it to healthy, let it idle, read its memory, check its endpoints,
    load it, stop it."""
    start()
    url = stack.url(name, PORT)
    healthy = healthy_after_start(stack, name, url)
    time.sleep(args.idle)
    idle_mb, idle_processes = memory(stack, name)
    statuses = check(url, auth)
    result = {"time_to_healthy_s": round(healthy, 2), "idle_memory_mb": idle_mb, "processes": idle_processes,
              "endpoints_served": served(statuses), "endpoint_statuses": statuses,
              "levels": load(args, auth, "--uri", url)}
    remove_pod(stack, name)
    return result


def remove_pod(stack, name):
    """Removes a workload's containers (kube.run names its further containers name-...)."""
    for container in [c for c in stack.containers if c == name or c.startswith(name + "-")]:
        stack.containers[container].remove(force=True)
        del stack.containers[container]


def createdb(stack, name):
    out = stack.exec("db-pod", ["createdb", "-U", "mlflow", name], user="999")
    assert out.exit_code == 0, out.output


def render_servers(image_ref):
    """{name: manifests} for SERVERS, every render with the same generated secrets."""
    base = Path(tempfile.mkdtemp(prefix="bench-manifests-"))
    docs = {}
    for name, extra in SERVERS.items():
        if docs:
            shutil.copytree(base / "ours" / "credentials", base / name / "credentials")
        docs[name] = render(base / name, dict(extra, mlflow_image_ref=image_ref,
                                              postgres_image="mlflow-k3s-test/postgres:15"))
    return docs


def run(args):
    image_ref = build_mlflow_image(args.flavor)[0]
    docs = render_servers(image_ref)
    results = {name: [] for name in [*SERVERS, "guide", "ceiling"]}
    with Stack("bench-throughput") as stack:
        kube = KubeToDocker(stack, docs["ours"])
        auth = ("admin", kube.secret_value("mlflow-server", "admin-password"))
        db = find(docs["ours"], "Deployment", "postgres")
        kube.run(db, "db-pod")
        stack.wait_exec("db-pod", db["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"])
        kube.run(find(docs["ours"], "Job"), "migration")
        assert stack.container("migration").wait(timeout=600)["StatusCode"] == 0, stack.logs("migration")

        # Same server, same role and password as ours; only the database differs.
        uri = kube.env(find(docs["ours"], "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0])[
            "MLFLOW_BACKEND_STORE_URI"]
        base = uri.rpartition("/")[0]
        for database in ("guide", "ceiling"):
            createdb(stack, database)
            stack.client.containers.run(image_ref, command=["db", "upgrade", base + "/" + database], remove=True,
                                        network=stack.network.name)

        # The guide's image has no TCP_NODELAY fix (tcp_nodelay.pth): blank it out.
        pth = stack.client.containers.run(image_ref, entrypoint=["/opt/mlflow/bin/python", "-c", NODELAY_PTH],
                                          remove=True, network_mode="none").decode().strip()

        def start_guide():
            stack.start("guide", image_ref, ports=[PORT], volumes={"/dev/null": {"bind": pth, "mode": "ro"}}, command=[
                "server", "--backend-store-uri", base + "/guide", "--default-artifact-root",
                "file:///tmp/mlflow/artifacts", "--host", "0.0.0.0", "--port", str(PORT)])

        def start(name):
            kube.docs = docs[name]
            return lambda: kube.run(find(docs[name], "Deployment", "mlflow"), name)

        # One engine shared by every client process's fork, its pool big enough for all of them.
        pool = {"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": str(max(int(c) for c in args.clients.split(","))),
                "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "4"}
        for _rep in range(args.reps):
            for name in SERVERS:
                results[name].append(measure_server(stack, name, start(name), args, auth))
            results["guide"].append(measure_server(stack, "guide", start_guide, args))
            out = stack.client.containers.run(
                image_ref, entrypoint=["python", "/bench/tracking_load.py"], remove=True, network=stack.network.name,
                environment=pool, command=["--store", base + "/ceiling", "--clients", args.clients, "--processes",
                                           "--seconds", str(args.seconds)],
                volumes={str(ROOT / "bench"): {"bind": "/bench", "mode": "ro"}})
            results["ceiling"].append(
                {"levels": [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]})
    return image_ref, results


def median(reps, *path):
    values = []
    for rep in reps:
        value = rep
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def table(results):
    rows = ["%-12s %7s %8s %8s %8s %9s %6s %9s %8s %8s" % (
        "config", "clients", "req/s", "p50 ms", "p95 ms", "lm p50", "errors", "endpoints", "healthy", "idle MiB")]
    levels = {}
    for config, reps in results.items():
        for i, level in enumerate(reps[0]["levels"]):
            clients = level["clients"]
            keys = ("requests_per_s", "p50_ms", "p95_ms", "log_metric_p50_ms", "errors")
            row = {k: median(reps, "levels", i, k) for k in keys}
            levels.setdefault(clients, {})[config] = row
            extra = ""
            if "endpoints_served" in reps[0]:
                served_count = statistics.median(len(r["endpoints_served"]) for r in reps)
                extra = "%6d/%-2d %8.2f %8d" % (served_count, len(reps[0]["endpoint_statuses"]),
                                                median(reps, "time_to_healthy_s"), median(reps, "idle_memory_mb"))
            rows.append("%-12s %7d %8.1f %8.2f %8.2f %9.2f %6d %s" % (
                config, clients, row["requests_per_s"], row["p50_ms"], row["p95_ms"], row["log_metric_p50_ms"],
                row["errors"], extra))
    for clients, by in sorted(levels.items()):
        ours = by["ours"]["requests_per_s"]
        rows.append("clients=%d: ours/ceiling %.2f, ours/guide %.2f, ours/gunicorn %.2f, ours/uvicorn %.2f" % (
            clients, ours / by["ceiling"]["requests_per_s"], ours / by["guide"]["requests_per_s"],
            ours / by["gunicorn"]["requests_per_s"], ours / by["uvicorn"]["requests_per_s"]))
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--idle", type=float, default=10, help="seconds of idling before reading memory")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--flavor", help="the image flavor (default: the role's)")
    args = parser.parse_args()
    image_ref, results = run(args)
    print("machine: %s, %d cores, Python %s; image %s" % (
        platform.platform(), os.cpu_count(), platform.python_version(), image_ref))
    print(table(results))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
