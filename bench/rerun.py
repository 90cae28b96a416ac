"""The rerun figure: wall time and changed count of a second site.yml on the converged flow
scenario (molecule/flow: a k3s server and agent with the k3s STAND-IN, the STAND-IN cluster
running the workloads as Docker containers). Prints figures, not pass/fail.

    python bench/rerun.py              # converges first when the scenario is not up
    python bench/rerun.py --runs 3     # several reruns, each timed

Each rerun is `molecule converge -s flow` (= site.yml, verify.yml included) with the
ansible.posix.profile_tasks and profile_roles callbacks; the time by role and the slowest
tasks are listed.
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECAP = re.compile(r"(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
TASK_TIME = re.compile(r"^(.*?) -+ (\d+\.\d+)s$")


def tool_env(**extra):
    """The environment of the project's ansible-playbook and molecule, without colours."""
    return dict(os.environ, PATH=os.path.join(ROOT, ".venv", "bin") + os.pathsep + os.environ.get("PATH", ""),
                ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), NO_COLOR="1", ANSIBLE_NOCOLOR="1", **extra)


def molecule(*args, profile=False):
    env = tool_env(COLUMNS="250")  # `molecule list` cuts instance names to the terminal's width
    if profile:
        env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks,ansible.posix.profile_roles"
        env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "8"
    started = time.monotonic()
    proc = subprocess.run(["molecule", *args, "-s", "flow"], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    return proc, time.monotonic() - started


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return "%s, %d cores (%s), %.0f GiB RAM, Python %s" % (
        platform.platform(), os.cpu_count(), cpu, mem, platform.python_version())


def ensure_converged():
    """Converges the flow scenario unless `molecule list` shows it created and converged."""
    listing = molecule("list")[0]
    if re.search(r"flow-mol-server.*\btrue\b.*\btrue\b", ANSI.sub("", listing.stdout)):
        return
    print("flow scenario not converged: molecule converge -s flow ...", flush=True)
    proc, seconds = molecule("converge")
    if proc.returncode != 0:
        sys.exit(proc.stdout[-4000:] + proc.stderr[-2000:])
    print("first converge (create, prepare, site.yml): %.0f s" % seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    ensure_converged()
    print("machine: %s" % machine())
    for run in range(1, args.runs + 1):
        proc, seconds = molecule("converge", profile=True)
        out = ANSI.sub("", proc.stdout).replace("\u2502", " ")
        if proc.returncode != 0:
            sys.exit(out[-4000:] + proc.stderr[-2000:])
        recap = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in RECAP.finditer(out)}
        changed = sum(counts[1] for counts in recap.values())
        tasks = sum(counts[0] for counts in recap.values())
        print("rerun %d of site.yml: %.1f s wall (molecule converge), changed=%d, ok=%d  %s" % (
            run, seconds, changed, tasks,
            "  ".join("%s ok=%d changed=%d" % (h, o, c) for h, (o, c) in sorted(recap.items()))))
        timed = [(name.strip(), float(secs)) for name, secs in
                 (m.groups() for m in (TASK_TIME.match(line.strip()) for line in out.splitlines()) if m)]
        # profile_roles prints one line per role (a name without spaces), profile_tasks per task.
        roles = [(name, secs) for name, secs in timed if " " not in name and name != "total"]
        by_role = sorted(roles, key=lambda x: -x[1])
        print("    by role: " + ", ".join("%s %.1f s" % (name, secs) for name, secs in by_role))
        for name, secs in sorted(set(timed) - set(roles), key=lambda x: -x[1])[:8]:
            print("    %6.1f s  %s" % (secs, name))


if __name__ == "__main__":
    main()
