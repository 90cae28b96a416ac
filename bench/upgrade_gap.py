"""The upgrade figure: while a client logs metrics in a loop, an MLflow upgrade through
playbooks/upgrade.yml. Prints the points the client sent, the points MLflow kept, the calls
that failed after MLflow's own retries, and the longest gap. Prints figures, not pass/fail.

It runs on the converged flow scenario (molecule/flow: the k3s STAND-IN and the STAND-IN
cluster, whose kubelet runs each pod as a Docker container and rolls a Deployment out as its
strategy says: the role's Recreate, the old pod gone before the new one starts). Each
upgrade builds and imports a new image (another mlflow_image_extra_packages), runs its
migration Job and rolls the Deployment out; the database backup of upgrade.yml is skipped.

    python bench/upgrade_gap.py                 # converges first when the scenario is not up
    python bench/upgrade_gap.py --upgrades 2 --interval 0.05

The client is MLflow's own (mlflow-skinny's MlflowClient), with its default retries
(MLFLOW_HTTP_REQUEST_MAX_RETRIES and the backoff), logged in with the scenario's mlflow.env.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rerun import ANSI, ROOT, ensure_converged, machine, tool_env  # noqa: E402

# Alternated so that every upgrade changes the image (tags follow the build context).
EXTRA_PACKAGES = [["tomli==2.2.1"], []]

CLIENT = r"""
import json, os, sys, time
from mlflow import MlflowClient

client = MlflowClient()
run = client.create_run(client.create_experiment("upgrade-gap-%d" % time.time_ns()))
stop_file, out_file, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
calls, step = [], 0
print(run.info.run_id, flush=True)
while not os.path.exists(stop_file):
    started = time.time()
    try:
        client.log_metric(run.info.run_id, "step", step, step=step, timestamp=int(started * 1000))
        error = None
    except Exception as e:  # after MLflow's own retries
        error = str(e)[:300]
    calls.append({"step": step, "start": started, "end": time.time(), "error": error})
    step += 1
    time.sleep(interval)
history = client.get_metric_history(run.info.run_id, "step")
json.dump({"run_id": run.info.run_id, "calls": calls, "kept": [m.step for m in history]}, open(out_file, "w"))
"""


def ephemeral_directory():
    from molecule.scenario import checksum

    base = os.path.join(os.path.expanduser("~"), ".ansible", "tmp")
    return os.path.join(base, "molecule.%s.flow" % checksum(os.path.basename(ROOT), 4))


def client_env(eph):
    env = dict(os.environ)
    with open(os.path.join(eph, "credentials", "mlflow.env")) as f:
        for key, value in re.findall(r"^export (\w+)=(.*)$", f.read(), re.M):
            env[key] = value.strip("'\"")
    return env


def k3s_version(eph):
    """The k3s release the scenario runs (upgrade.yml refuses a downgrade)."""
    out = subprocess.run(["docker", "exec", "flow-mol-server", "/usr/local/bin/k3s", "--version"],
                         capture_output=True, text=True, check=True).stdout
    return re.search(r"v\d+\.\d+\.\d+\+k3s\d+", out).group(0)


def upgrade(eph, extra_packages):
    env = tool_env(MOLECULE_EPHEMERAL_DIRECTORY=eph, MOLECULE_FILE=os.path.join(eph, "molecule.yml"),
                   ANSIBLE_PIPELINING="True")
    cmd = ["ansible-playbook", "-i", os.path.join(eph, "inventory"), os.path.join(ROOT, "playbooks", "upgrade.yml"),
           "-e", "upgrade_backup=false", "-e", "flow_k3s_version=%s" % k3s_version(eph),
           "-e", json.dumps({"mlflow_image_extra_packages": extra_packages})]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit("upgrade.yml failed:\n" + ANSI.sub("", proc.stdout)[-4000:] + proc.stderr[-2000:])
    return time.monotonic() - started


def one_upgrade(eph, extra_packages, interval):
    with tempfile.TemporaryDirectory(prefix="upgrade-gap-") as tmp:
        stop, out = os.path.join(tmp, "stop"), os.path.join(tmp, "calls.json")
        client = subprocess.Popen([sys.executable, "-c", CLIENT, stop, out, str(interval)], env=client_env(eph),
                                  stdout=subprocess.PIPE, text=True)
        client.stdout.readline()  # the run exists: the client is logging
        time.sleep(3)
        seconds = upgrade(eph, extra_packages)
        time.sleep(3)
        open(stop, "w").close()
        if client.wait(timeout=600) != 0:
            sys.exit("the client failed")
        with open(out) as f:
            result = json.load(f)
    calls = result["calls"]
    acknowledged = [c for c in calls if c["error"] is None]
    kept = set(result["kept"])
    ends = [c["end"] for c in acknowledged]
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    return {
        "upgrade.yml s": round(seconds, 1),
        "sent": len(calls),
        "acknowledged": len(acknowledged),
        "failed after retries": len(calls) - len(acknowledged),
        "lost (acknowledged, not kept)": len({c["step"] for c in acknowledged} - kept),
        "duplicates kept": len(result["kept"]) - len(kept),
        "longest gap s": round(max(gaps), 2) if gaps else None,
        "longest call s": round(max(c["end"] - c["start"] for c in calls), 2),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--upgrades", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between two log_metric calls")
    args = parser.parse_args()
    ensure_converged()
    print("machine: %s" % machine())
    eph = ephemeral_directory()
    for n in range(args.upgrades):
        extra = EXTRA_PACKAGES[n % len(EXTRA_PACKAGES)]
        figures = one_upgrade(eph, extra, args.interval)
        print("upgrade %d (mlflow_image_extra_packages=%s): %s" % (
            n + 1, extra, "  ".join("%s=%s" % item for item in figures.items())), flush=True)


if __name__ == "__main__":
    main()
