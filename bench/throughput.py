"""Tracking throughput: our defaults against the original guide's configuration and
against the in-process ceiling, side by side in one run on the same machine.

- ours:    the postgres and mlflow roles' rendered manifests, started as containers
           (tests/stack/kube_to_docker.py) with the real image from the mlflow_image role
- guide:   the same image (without its TCP_NODELAY fix) and database server, `mlflow server
           --backend-store-uri … --default-artifact-root file:///… --host 0.0.0.0 --port 5000`
           and nothing else (the guide's other mistakes, e.g. postgres://, are left out so
           it runs at all)
- ceiling: the same operations in-process through MLflow's SqlAlchemyStore, run inside
           a container of the same image on the same network (no HTTP, no server)

The PostgreSQL is the stand-in image (Debian's PostgreSQL 15, see tests/images). Load:
bench/tracking_load.py. Each level is bounded in time and iterations.

    .venv/bin/python bench/throughput.py [--clients 1,4,16] [--seconds 20]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "runtime"), str(ROOT / "tests" / "stack"), str(ROOT / "tests")]

from images import build_mlflow_image  # noqa: E402
from kube_to_docker import KubeToDocker, find  # noqa: E402
from manifests import render  # noqa: E402
from stack import Stack  # noqa: E402

LOAD = ROOT / "bench" / "tracking_load.py"
NODELAY_PTH = "import sysconfig; print(sysconfig.get_paths()['purelib'] + '/tcp_nodelay.pth')"
PORT = 5000


def load(args, *target):
    proc = subprocess.run([sys.executable, str(LOAD), *target, "--clients", args.clients,
                           "--seconds", str(args.seconds)], capture_output=True, text=True, check=True)
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


def measure_server(stack, name, start, args):
    """Start a server, time it to healthy, let it idle, read its memory, load it, stop it."""
    started = time.monotonic()
    start()
    url = stack.url(name, PORT)
    stack.wait_http(url + "/health", name=name, timeout=300)
    healthy = time.monotonic() - started
    time.sleep(args.idle)
    idle_mb, idle_processes = memory(stack, name)
    result = {"time_to_healthy_s": round(healthy, 1), "idle_memory_mb": idle_mb, "processes": idle_processes,
              "levels": load(args, "--uri", url)}
    stack.stop(name)
    return result


def createdb(stack, name):
    out = stack.exec("db-pod", ["createdb", "-U", "mlflow", name], user="999")
    assert out.exit_code == 0, out.output


def run(args):
    image_ref = build_mlflow_image(args.flavor)[0]
    docs = render(Path(tempfile.mkdtemp(prefix="bench-manifests-")),
                  {"mlflow_image_ref": image_ref, "postgres_image": "mlflow-k3s-test/postgres:15"})
    results = {}
    with Stack("bench-throughput") as stack:
        kube = KubeToDocker(stack, docs)
        db = find(docs, "Deployment", "postgres")
        kube.run(db, "db-pod")
        stack.wait_exec("db-pod", db["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"])
        kube.run(find(docs, "Job"), "migration")
        assert stack.container("migration").wait(timeout=600)["StatusCode"] == 0, stack.logs("migration")

        results["ours"] = measure_server(stack, "ours", lambda: kube.run(find(docs, "Deployment", "mlflow"), "ours"), args)

        # Same server, same role and password as ours; only the database differs.
        uri = kube.env(find(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0])[
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

        results["guide"] = measure_server(stack, "guide", start_guide, args)

        # One engine shared by every client thread, its pool big enough for all of them.
        pool = {"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": str(max(int(c) for c in args.clients.split(","))),
                "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "4"}
        out = stack.client.containers.run(
            image_ref, entrypoint=["python", "/bench/tracking_load.py"], remove=True, network=stack.network.name,
            environment=pool,
            command=["--store", base + "/ceiling", "--clients", args.clients, "--seconds", str(args.seconds)],
            volumes={str(ROOT / "bench"): {"bind": "/bench", "mode": "ro"}})
        results["ceiling"] = {"levels": [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]}
    return image_ref, results


def table(results):
    rows = ["%-8s %7s %10s %11s %8s %8s %9s %6s" % ("config", "clients", "req/s", "points/s", "p50 ms", "p95 ms",
                                                    "lm p50", "errors")]
    for config, result in results.items():
        for level in result["levels"]:
            rows.append("%-8s %7d %10.1f %11.1f %8.2f %8.2f %9.2f %6d" % (
                config, level["clients"], level["requests_per_s"], level["metric_points_per_s"], level["p50_ms"],
                level["p95_ms"], level["log_metric_p50_ms"], level["errors"]))
    for config in ("ours", "guide"):
        r = results[config]
        rows.append("%s: healthy in %.1f s, idle memory %d MiB in %d processes" % (
            config, r["time_to_healthy_s"], r["idle_memory_mb"], r["processes"]))
    by = {c: {lv["clients"]: lv for lv in r["levels"]} for c, r in results.items()}
    for clients in sorted(by["ours"]):
        ours, guide, ceiling = by["ours"][clients], by["guide"][clients], by["ceiling"][clients]
        rows.append("clients=%d: ours/ceiling %.2f, ours/guide %.2f (requests/s)" % (
            clients, ours["requests_per_s"] / ceiling["requests_per_s"], ours["requests_per_s"] / guide["requests_per_s"]))
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--idle", type=float, default=15, help="seconds of idling before reading memory")
    parser.add_argument("--flavor", default="full")
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
