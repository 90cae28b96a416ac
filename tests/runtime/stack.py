"""Reusable runtime harness: start containers on a private Docker network, the way
the rendered Kubernetes workloads would run (image, command/args, env, volumes,
user, network aliases), and publish ports on 127.0.0.1 only.

    with Stack("mytest") as stack:
        stack.start("db", "mlflow-k3s-test/postgres:15", env={...}, aliases=["postgres"])
        stack.wait_exec("db", ["pg_isready", "-h", "127.0.0.1"])
        web = stack.start("web", image_ref, env={...}, ports=[5000])
        stack.wait_http(stack.url("web", 5000) + "/health")

Everything it creates (containers, the network, named volumes) carries the prefix
given to Stack() and is removed on exit, and only that.
"""
from __future__ import annotations

import time
import uuid

import docker
import requests

LABEL = "homelab.mlflow-k3s.test-stack"


class StackError(AssertionError):
    pass


class Stack:
    def __init__(self, prefix: str, client: docker.DockerClient | None = None):
        # A unique suffix keeps parallel or leftover runs apart.
        self.prefix = "%s-%s" % (prefix, uuid.uuid4().hex[:6])
        self.client = client or docker.from_env()
        self.network = None
        self.containers: dict[str, docker.models.containers.Container] = {}
        self.volumes: list[str] = []

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> "Stack":
        self.network = self.client.networks.create(
            self.prefix + "-net", driver="bridge", labels={LABEL: self.prefix})
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": "%s=%s" % (LABEL, self.prefix)}):
            container.remove(force=True, v=True)
        for name in self.volumes:
            try:
                self.client.volumes.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
        if self.network is not None:
            self.network.remove()
            self.network = None

    # -- containers --------------------------------------------------------------
    def volume(self, name: str) -> str:
        """A named Docker volume owned by this stack; returns its full name."""
        full = "%s-%s" % (self.prefix, name)
        self.client.volumes.create(full, labels={LABEL: self.prefix})
        self.volumes.append(full)
        return full

    def start(self, name: str, image: str, env: dict | None = None, command: list | None = None,
              entrypoint: list | None = None, volumes: dict | None = None, user: str | None = None,
              aliases: list | None = None, ports: list | None = None, read_only: bool = False,
              tmpfs: dict | None = None, beside: str | None = None, **extra):
        """Start a container. command = Kubernetes `args` (the image's CMD), entrypoint =
        Kubernetes `command`; volumes = {volume name or host path: {"bind": path, "mode": "rw"}};
        ports = container ports published on 127.0.0.1 at free host ports; beside = a started
        container whose network namespace this one joins (a further container of its pod:
        localhost is shared, no aliases or ports of its own)."""
        full = "%s-%s" % (self.prefix, name)
        if beside is not None:
            extra["network_mode"] = "container:" + self.containers[beside].id
        else:
            extra["ports"] = {"%d/tcp" % p: ("127.0.0.1", None) for p in (ports or [])}
        container = self.client.containers.create(
            image, name=full, command=command, entrypoint=entrypoint, environment=env or {},
            volumes=volumes or {}, user=user, read_only=read_only, tmpfs=tmpfs or {},
            labels={LABEL: self.prefix}, detach=True, **extra)
        if beside is None:
            # Attach to our network (with aliases) before starting; drop the default bridge.
            self.client.networks.get("bridge").disconnect(container)
            self.network.connect(container, aliases=[name] + list(aliases or []))
        container.start()
        self.containers[name] = container
        return container

    def container(self, name: str):
        container = self.containers[name]
        container.reload()
        return container

    def host_port(self, name: str, port: int) -> int:
        bindings = self.container(name).attrs["NetworkSettings"]["Ports"].get("%d/tcp" % port)
        if not bindings:
            raise StackError("%s publishes no port %d" % (name, port))
        return int(bindings[0]["HostPort"])

    def url(self, name: str, port: int) -> str:
        return "http://127.0.0.1:%d" % self.host_port(name, port)

    def logs(self, name: str) -> str:
        return self.containers[name].logs().decode("utf-8", "replace")

    def exec(self, name: str, cmd: list, user: str | None = None):
        return self.container(name).exec_run(cmd, user=user or "", demux=False)

    def stop(self, name: str, timeout: int = 30) -> float:
        """Stop (SIGTERM, then SIGKILL after timeout); returns the seconds it took."""
        started = time.monotonic()
        self.containers[name].stop(timeout=timeout)
        return time.monotonic() - started

    # -- waiting -----------------------------------------------------------------
    def _check_running(self, name: str) -> None:
        container = self.container(name)
        if container.status not in ("created", "running"):
            raise StackError("%s exited (%s); log tail:\n%s" % (
                name, container.attrs["State"].get("ExitCode"), self.logs(name)[-3000:]))

    def wait_exec(self, name: str, cmd: list, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_running(name)
            result = self.exec(name, cmd)
            if result.exit_code == 0:
                return
            if time.monotonic() > deadline:
                raise StackError("%s: %s still fails after %ss: %s\n%s" % (
                    name, cmd, timeout, result.output.decode()[-500:], self.logs(name)[-3000:]))
            time.sleep(1)

    def wait_http(self, url: str, name: str | None = None, timeout: float = 180, status: int = 200,
                  headers: dict | None = None) -> requests.Response:
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if name:
                self._check_running(name)
            try:
                response = requests.get(url, timeout=5, headers=headers or {})
                if response.status_code == status:
                    return response
                last = "HTTP %d" % response.status_code
            except requests.RequestException as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                tail = self.logs(name)[-3000:] if name else ""
                raise StackError("%s did not answer %d within %ss (last: %s)\n%s" % (url, status, timeout, last, tail))
            time.sleep(1)
