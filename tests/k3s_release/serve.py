"""Serve a directory over HTTP on 127.0.0.1 (a free port) as a k3s release mirror.

TEST HELPER. Usage: serve.py DIRECTORY STATE_DIR
Daemonises, writes STATE_DIR/port and STATE_DIR/pid, and returns once it listens;
the caller stops it with `kill $(cat STATE_DIR/pid)`. Requests go to STATE_DIR/access.log.
"""
import functools
import http.server
import os
import sys
import time


def main(directory, state_dir):
    os.makedirs(state_dir, exist_ok=True)
    port_file = os.path.join(state_dir, "port")
    if os.path.exists(port_file):
        os.remove(port_file)
    if os.fork():
        for _attempt in range(100):
            if os.path.exists(port_file):
                print(open(port_file).read())
                return
            time.sleep(0.05)
        sys.exit("serve.py: the server did not start")
    os.setsid()
    if os.fork():
        os._exit(0)
    log = open(os.path.join(state_dir, "access.log"), "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with open(os.path.join(state_dir, "pid"), "w") as f:
        f.write(str(os.getpid()))
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
