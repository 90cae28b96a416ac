"""TEST HELPER for the k3s STAND-IN's `kubectl get nodes` (it answers from nodes.json).

Usage: nodes_ready_later.py DELAY NODE [NODE ...]
Once k3s has started (starts.log appears), reports the nodes NotReady, then Ready
DELAY seconds later: the role's wait must outlast that. Does nothing when the test
already wrote nodes.json (a rerun).
"""
import json
import os
import sys
import time

STATE_DIR = "/var/lib/rancher/k3s/standin"
NODES = os.path.join(STATE_DIR, "nodes.json")


def write(nodes, state):
    with open(NODES + ".tmp", "w") as f:
        json.dump({name: state for name in nodes}, f)
    os.rename(NODES + ".tmp", NODES)


def main(delay, nodes):
    if os.path.exists(NODES):
        return
    while not os.path.exists(os.path.join(STATE_DIR, "starts.log")):
        time.sleep(0.2)
    write(nodes, "NotReady")
    time.sleep(delay)
    write(nodes, "Ready")


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2:])
