"""STAND-IN k3s cluster for the flow scenario (molecule/flow): it is NOT Kubernetes.

One daemon on the controller that plays three parts of a k3s cluster:
- the API server: the STAND-IN Kubernetes API of tests/api/standin_k8s.py (kmock's
  KubernetesEmulator with fixes) on 127.0.0.1, which the playbooks drive with
  kubernetes.core from the controller, exactly as they drive a real cluster;
- the local-path provisioner: a PersistentVolumeClaim is bound, when its first pod
  starts, to a PersistentVolume whose hostPath is a directory under
  /var/lib/rancher/k3s/storage on a node (a Molecule host container; that directory is
  a Docker volume of the host container, so the playbooks' tar on the node sees what
  the pods wrote); deleting the claim deletes the directory (reclaim policy Delete);
- the kubelet: each Deployment and Job, read from the API (what kubernetes.core
  actually applied), runs as a Docker container with tests/stack/kube_to_docker.py,
  on a Docker network of its own; the Deployment/Job status written back to the API
  comes from the real container: available once its readiness probe passes, Complete
  once it exits 0. A pod whose image has a `localhost/` name (it can come from no
  registry) only starts when `k3s ctr -n k8s.io` on its node lists that image:
  otherwise it stays in ErrImagePull, as on k3s. NodePort Services are published on
  127.0.0.1 at their nodePort.

Not emulated: ReplicaSets and Pod objects, more than one replica, CronJob schedules,
NetworkPolicy, resource limits, fsGroup (directories are 0777 as local-path makes them).
Scheduling follows the nodeSelector and required node affinity (a pod no node fits stays
Pending, as FailedScheduling), against the labels the kubelet gives its Node.

    standin_cluster.py start STATE_DIR --node NAME [--node NAME ...]
    standin_cluster.py stop STATE_DIR
    standin_cluster.py freeport FILE      a free 127.0.0.1 port in the NodePort range

`start` daemonises and returns once the API answers; STATE_DIR receives kubeconfig.yaml,
url, pid, cluster.log, events.jsonl (one line per pod event) and pods.json.
"""
import argparse
import asyncio
import hashlib
import json
import os
import signal
import sys
import threading
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
for sub in ("api", "stack", "runtime"):
    sys.path.insert(0, os.path.join(TESTS, sub))

STORAGE_DIR = "/var/lib/rancher/k3s/storage"
K3S = "/usr/local/bin/k3s"


def _h(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _pv_path(pv):
    return (pv["spec"].get("local") or pv["spec"]["hostPath"])["path"]


# uname -m -> kubernetes.io/arch (GOARCH), as the kubelet labels its Node.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "s390x": "s390x"}


class Cluster:
    def __init__(self, state_dir, nodes):
        import docker
        import kmock
        import standin_k8s
        from stack import Stack

        standin_k8s.RESOURCES["v1/persistentvolumes"] = ("PersistentVolume", False)
        self.kmock = kmock
        self.standin_k8s = standin_k8s
        self.state_dir = state_dir
        self.nodes = nodes
        self.docker = docker.from_env()
        self.loop = asyncio.new_event_loop()
        self.stack = _NodePortStack("flow-standin", self.docker)
        self.Stack = Stack
        self.pods = {}        # (kind, ns, name) -> {"container", "hash", "uid", "node", "ready", ...}
        self.turns = {}
        self.labels = {}      # node -> its Node labels
        self.stopping = threading.Event()
        self.log = open(os.path.join(state_dir, "cluster.log"), "a", buffering=1)

    # -- API in the event loop -------------------------------------------------------
    def call(self, fn, *args):
        async def wrapper():
            async with self.api._lock:
                return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(30)

    async def _start_api(self):
        self.api = self.standin_k8s.StandInKubernetesAPI()
        self.api.k8s_version = (1, 36)
        await self.api.__aenter__()
        self.server = self.kmock.Server(self.api, host="127.0.0.1")
        await self.server.__aenter__()

    def start(self):
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start_api(), self.loop).result(30)
        self.stack.__enter__()
        url = "http://127.0.0.1:%d" % self.server.port
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": url}}],
            "users": [{"name": "standin", "user": {}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}],
        }
        path = os.path.join(self.state_dir, "kubeconfig.yaml")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(kubeconfig, f)
        with open(os.path.join(self.state_dir, "prefix"), "w") as f:
            f.write(self.stack.prefix)
        with open(os.path.join(self.state_dir, "url.tmp"), "w") as f:
            f.write(url)
        os.rename(os.path.join(self.state_dir, "url.tmp"), os.path.join(self.state_dir, "url"))

    def stop(self):
        self.stopping.set()

    # -- bookkeeping -----------------------------------------------------------------
    def event(self, what, **data):
        data.update(t=time.time(), event=what)
        with open(os.path.join(self.state_dir, "events.jsonl"), "a") as f:
            f.write(json.dumps(data) + "\n")
        self.log.write("%s %s\n" % (time.strftime("%H:%M:%S"), json.dumps(data)))

    def write_pods(self):
        pods = {"%s/%s/%s" % k: {x: v for x, v in p.items() if x != "container"} for k, p in self.pods.items()}
        tmp = os.path.join(self.state_dir, "pods.json.tmp")
        with open(tmp, "w") as f:
            json.dump(pods, f, indent=1, sort_keys=True)
        os.rename(tmp, os.path.join(self.state_dir, "pods.json"))

    # -- the API objects ---------------------------------------------------------------
    def _set(self, kind_plural, namespace, name, patch):
        """A controller's write: patch the object, keep the emulator's change tracking right."""
        key = (self.kmock.resource(kind_plural), namespace, name)
        obj = self.api.objects[key]
        if obj.deleted:
            return
        obj.patch(patch)
        obj.patch({"metadata": {"resourceVersion": self.api._next_rv()}})
        self.api._last[key] = json.dumps(obj.raw, sort_keys=True)
        self.api._specs[key] = json.dumps(obj.raw.get("spec"), sort_keys=True)

    def set_status(self, kind_plural, namespace, name, status, current):
        if all(current.get(k) == v for k, v in status.items()):
            return
        self.call(self._set, kind_plural, namespace, name, {"status": status})

    # -- local-path provisioner --------------------------------------------------------
    def node_storage(self, node):
        container = self.docker.containers.get(node)
        for mount in container.attrs["Mounts"]:
            if mount["Destination"] == STORAGE_DIR:
                return mount["Source"]
        raise RuntimeError("node %s has no volume at %s" % (node, STORAGE_DIR))

    def bind_claim(self, snap, namespace, claim, node):
        pvc = snap[("PersistentVolumeClaim", namespace, claim)]
        volume = pvc.get("spec", {}).get("volumeName")
        if volume:
            pv = snap[("PersistentVolume", None, volume)]
            return _pv_path(pv), pv["metadata"]["annotations"]["standin/node"]
        volume = "pvc-" + pvc["metadata"]["uid"]
        path = "%s/%s_%s_%s" % (STORAGE_DIR, volume, namespace, claim)
        self.docker.containers.get(node).exec_run(["mkdir", "-m", "0777", "-p", path])
        self.docker.containers.get(node).exec_run(["chmod", "0777", path])
        pv = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": volume, "uid": str(uuid.uuid4()), "resourceVersion": "1",
                         "annotations": {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path",
                                         "standin/node": node}},
            "spec": {
                "accessModes": pvc["spec"].get("accessModes", ["ReadWriteOnce"]),
                "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
                "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim,
                             "uid": pvc["metadata"]["uid"]},
                # local-path's provisioner.go: the claim's volumeType annotation, hostPath by default
                **({"local": {"path": path}} if (pvc["metadata"].get("annotations") or {}).get("volumeType") == "local"
                   else {"hostPath": {"path": path, "type": "DirectoryOrCreate"}}),
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": pvc["spec"].get("storageClassName", "local-path"),
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Bound"},
        }

        def create():
            self.api.objects["v1/persistentvolumes", None, volume] = pv
            self._set("v1/persistentvolumeclaims", namespace, claim,
                      {"spec": {"volumeName": volume}, "status": {"phase": "Bound"}})
        self.call(create)
        self.event("volume-bound", claim=claim, volume=volume, node=node, path=path)
        return path, node

    def release_claims(self, snap):
        for key, pv in snap.items():
            if key[0] != "PersistentVolume":
                continue
            ref = pv["spec"]["claimRef"]
            pvc = snap.get(("PersistentVolumeClaim", ref["namespace"], ref["name"]))
            if pvc is None or pvc["metadata"]["uid"] != ref["uid"]:
                node = pv["metadata"]["annotations"]["standin/node"]
                self.docker.containers.get(node).exec_run(["rm", "-rf", _pv_path(pv)])

                def delete(name=pv["metadata"]["name"]):
                    self.api.objects["v1/persistentvolumes", None, name].delete()
                self.call(delete)
                self.event("volume-deleted", volume=pv["metadata"]["name"], claim=ref["name"], node=node)

    # -- the kubelet -------------------------------------------------------------------
    def node_labels(self, node):
        """The labels the kubelet gives its Node (well-known labels: hostname, os, arch as GOARCH)."""
        if node not in self.labels:
            machine = self.docker.containers.get(node).exec_run(["uname", "-m"]).output.decode().strip()
            self.labels[node] = {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux",
                                 "kubernetes.io/arch": GOARCH.get(machine, machine)}
        return self.labels[node]

    def fits(self, node, pod):
        """kube-scheduler's NodeAffinity filter (pkg/scheduler/framework/plugins/nodeaffinity): the
        nodeSelector and one of the required terms (all of its expressions) must match the node."""
        labels = self.node_labels(node)
        if not pod["spec"].get("nodeSelector", {}).items() <= labels.items():
            return False
        required = pod["spec"].get("affinity", {}).get("nodeAffinity", {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution")
        if required is None:
            return True
        ops = {"In": lambda v, vals: v in vals, "NotIn": lambda v, vals: v is not None and v not in vals,
               "Exists": lambda v, _: v is not None, "DoesNotExist": lambda v, _: v is None}
        return any(all(ops[e["operator"]](labels.get(e["key"]), e.get("values", [])) for e in term["matchExpressions"])
                   for term in required["nodeSelectorTerms"])

    def schedule(self, snap, namespace, pod):
        """A node for the pod, or None (Pending: FailedScheduling) when no node fits."""
        fitting = [n for n in self.nodes if self.fits(n, pod)]
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes", [])
                  if "persistentVolumeClaim" in v]
        for claim in claims:
            volume = snap[("PersistentVolumeClaim", namespace, claim)].get("spec", {}).get("volumeName")
            if volume and ("PersistentVolume", None, volume) in snap:
                node = snap[("PersistentVolume", None, volume)]["metadata"]["annotations"]["standin/node"]
                return node if node in fitting else None  # a volume node affinity conflict
        if not fitting:
            return None
        # Round robin, pods with volumes and pods without on separate turns: with two nodes the
        # database and MLflow land on different nodes, the migration Job away from the database.
        turn = "volumes" if claims else "plain"
        index = self.turns.get(turn, 0 if claims else 1)
        self.turns[turn] = index + 1
        return fitting[index % len(fitting)]

    def image_present(self, node, image):
        if not image.startswith("localhost/"):
            return True  # a registry image: the node would pull it
        out = self.docker.containers.get(node).exec_run([K3S, "ctr", "-n", "k8s.io", "images", "ls", "-q"])
        return out.exit_code == 0 and image in out.output.decode().split()

    def start_pod(self, snap, kind, namespace, name, workload, attempt=0):
        from kube_to_docker import KubeToDocker, pod_template
        template = pod_template(workload)
        state = self.pods.get((kind, namespace, name)) or {}
        node = state.get("node") or self.schedule(snap, namespace, template)
        image = template["spec"]["containers"][0]["image"]
        docs = [o for key, o in snap.items() if key[1] in (namespace, None)]
        base = {"hash": _h(template), "uid": workload["metadata"]["uid"], "node": node, "image": image,
                "ready": False, "exited": None, "restarts": state.get("restarts", 0), "attempt": attempt,
                "generation": workload["metadata"].get("generation", 1), "started": None, "reason": None}
        if node is None:
            if state.get("reason") != "Unschedulable":
                self.event("pod-error", kind=kind, name=name, image=image, reason="Unschedulable",
                           message="0/%d nodes are available: node(s) didn't match Pod's node affinity/selector" % len(self.nodes))
            self.pods[(kind, namespace, name)] = dict(base, reason="Unschedulable", next_try=time.monotonic() + 3)
            return
        if not self.image_present(node, image):
            if state.get("reason") != "ErrImagePull":
                self.event("pod-error", kind=kind, name=name, node=node, image=image, reason="ErrImagePull")
            base["reason"] = "ErrImagePull"
            base["next_try"] = time.monotonic() + 3
            self.pods[(kind, namespace, name)] = base
            return
        cluster = self

        class Kube(KubeToDocker):
            applies_fs_group = False  # not emulated here (see the module doc)

            def pvc_volume(self, claim):
                path = cluster.bind_claim(snap, namespace, claim, node)[0]
                return cluster.node_storage(node) + path[len(STORAGE_DIR):]

            def node_ports(self, labels, container):
                node_ports = {}
                for svc in self.docs:
                    if svc["kind"] == "Service" and svc["spec"].get("type") == "NodePort" \
                            and svc["spec"]["selector"].items() <= labels.items():
                        for p in svc["spec"]["ports"]:
                            node_ports[p.get("targetPort", p["port"])] = p.get("nodePort")
                return [(p["containerPort"], node_ports.get(p.get("name"), node_ports.get(p["containerPort"])))
                        for p in container.get("ports", [])]

            def pod_ports(self, containers):
                return [(port, None) for port in super().pod_ports(containers)]

        cname = "%s-%s" % (name, attempt) if kind == "Job" else name
        self.remove_container(cname)
        container = Kube(self.stack, docs).run(workload, cname)
        base.update(container=cname, started=time.time())
        self.pods[(kind, namespace, name)] = base
        self.event("pod-started", kind=kind, name=name, node=node, image=image, container=container.name)

    def remove_container(self, cname):
        container = self.stack.containers.pop(cname, None)
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:  # already gone
                pass

    def probe(self, pod, workload):
        from kube_to_docker import pod_template
        c = pod_template(workload)["spec"]["containers"][0]
        probe = c.get("readinessProbe") or c.get("startupProbe")
        if probe is None:
            return True
        if "exec" in probe:
            return self.stack.exec(pod["container"], probe["exec"]["command"]).exit_code == 0
        if "httpGet" in probe:
            import requests
            port = probe["httpGet"]["port"]
            if isinstance(port, str):
                port = next(p["containerPort"] for p in c["ports"] if p.get("name") == port)
            try:
                url = self.stack.url(pod["container"], port) + probe["httpGet"].get("path", "/")
                return requests.get(url, timeout=3).status_code < 400
            except Exception:
                return False
        raise NotImplementedError(probe)

    def container_exit(self, pod):
        try:
            c = self.stack.container(pod["container"])
        except Exception:
            return -1
        if c.status in ("exited", "dead"):
            return c.attrs["State"]["ExitCode"]
        return None

    def reconcile(self):
        snap = self.call(self.api.snapshot)
        self.release_claims(snap)
        live = {k for k in snap if k[0] in ("Deployment", "Job")}
        for key in list(self.pods):
            if key not in live or self.pods[key]["uid"] != snap[key]["metadata"]["uid"]:
                pod = self.pods.pop(key)
                if pod.get("container"):
                    self.remove_container(pod["container"])
                self.event("pod-removed", kind=key[0], name=key[2])
        for key in sorted(live, key=lambda k: snap[k]["metadata"].get("creationTimestamp", "")):
            kind, namespace, name = key
            workload = snap[key]
            if kind == "Deployment":
                self.deployment(snap, key, workload)
            else:
                self.job(snap, key, workload)
        self.write_pods()

    def deployment(self, snap, key, workload):
        from kube_to_docker import pod_template
        kind, namespace, name = key
        replicas = workload["spec"].get("replicas", 1)
        generation = workload["metadata"].get("generation", 1)
        status = workload.get("status") or {}
        pod = self.pods.get(key)
        if replicas == 0:
            if pod is not None:
                self.remove_container(pod["container"])
                del self.pods[key]
                self.event("pod-removed", kind=kind, name=name)
            self.set_status("apps/v1/deployments", namespace, name, {
                "observedGeneration": generation, "replicas": 0, "updatedReplicas": 0, "readyReplicas": 0,
                "availableReplicas": 0, "unavailableReplicas": None}, status)
            return
        if pod is None or pod["hash"] != _h(pod_template(workload)):
            # strategy Recreate (and one replica): the old pod goes before the new one starts
            if pod is not None and pod.get("container"):
                self.remove_container(pod["container"])
                self.event("pod-removed", kind=kind, name=name, reason="rollout")
            self.start_pod(snap, kind, namespace, name, workload)
            self.set_status("apps/v1/deployments", namespace, name, {
                "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0,
                "availableReplicas": 0, "unavailableReplicas": 1}, status)
            return
        if pod["reason"] in ("ErrImagePull", "Unschedulable"):
            if time.monotonic() > pod["next_try"]:
                self.start_pod(snap, kind, namespace, name, workload)
            return
        code = self.container_exit(pod)
        if code is not None:
            self.event("pod-exited", kind=kind, name=name, code=code,
                       log=self.stack.logs(pod["container"])[-2000:] if code != -1 else "")
            restarts = pod["restarts"] + 1
            self.start_pod(snap, kind, namespace, name, workload)
            self.pods[key]["restarts"] = restarts
            self.set_status("apps/v1/deployments", namespace, name, {
                "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0,
                "availableReplicas": 0, "unavailableReplicas": 1}, status)
            return
        if not pod["ready"] and self.probe(pod, workload):
            pod["ready"] = True
            self.event("pod-ready", kind=kind, name=name, node=pod["node"], image=pod["image"])
        if pod["ready"]:
            self.set_status("apps/v1/deployments", namespace, name, {
                "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                "availableReplicas": 1, "unavailableReplicas": None}, status)

    def job(self, snap, key, workload):
        kind, namespace, name = key
        status = workload.get("status") or {}
        if any(c.get("status") == "True" for c in status.get("conditions", [])):
            return  # finished: the pod is kept until the Job is deleted
        pod = self.pods.get(key)
        if pod is None:
            self.start_pod(snap, kind, namespace, name, workload)
            self.set_status("batch/v1/jobs", namespace, name, {"active": 1, "startTime": _now()}, status)
            return
        if pod["reason"] in ("ErrImagePull", "Unschedulable"):
            if time.monotonic() > pod["next_try"]:
                self.start_pod(snap, kind, namespace, name, workload, pod["attempt"])
            return
        code = self.container_exit(pod)
        if code is None:
            return
        log = self.stack.logs(pod["container"])[-3000:] if code != -1 else ""
        if code == 0:
            self.event("job-complete", name=name, node=pod["node"], image=pod["image"], log=log[-500:])
            self.set_status("batch/v1/jobs", namespace, name, {
                "active": None, "succeeded": 1, "completionTime": _now(),
                "conditions": [{"type": "Complete", "status": "True"}]}, status)
        elif pod["attempt"] < workload["spec"].get("backoffLimit", 6):
            self.event("job-retry", name=name, code=code, log=log)
            self.start_pod(snap, kind, namespace, name, workload, pod["attempt"] + 1)
        else:
            self.event("job-failed", name=name, code=code, log=log)
            self.set_status("batch/v1/jobs", namespace, name, {
                "active": None, "failed": pod["attempt"] + 1,
                "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}, status)

    def run(self):
        while not self.stopping.is_set():
            try:
                self.reconcile()
            except Exception:
                self.log.write(traceback.format_exc())
            self.stopping.wait(0.5)
        self.stack.cleanup()
        self.log.write("stopped\n")


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _node_port_stack_class():
    from stack import LABEL, Stack

    class NodePortStack(Stack):
        """Publishes (containerPort, hostPort) pairs: a NodePort on 127.0.0.1 at the nodePort,
        any other container port at a free port (for the probes)."""

        def start(self, name, image, env=None, command=None, entrypoint=None, volumes=None, user=None,
                  aliases=None, ports=None, read_only=False, tmpfs=None, beside=None, **extra):
            if beside is not None:  # a further container of a pod: no ports or network of its own
                return super().start(name, image, env=env, command=command, entrypoint=entrypoint, volumes=volumes,
                                     user=user, read_only=read_only, tmpfs=tmpfs, beside=beside, **extra)
            full = "%s-%s" % (self.prefix, name)
            container = self.client.containers.create(
                image, name=full, command=command, entrypoint=entrypoint, environment=env or {},
                volumes=volumes or {}, user=user, read_only=read_only, tmpfs=tmpfs or {},
                labels={LABEL: self.prefix}, detach=True,
                ports={"%d/tcp" % p: ("127.0.0.1", host) for p, host in (ports or [])}, **extra)
            self.client.networks.get("bridge").disconnect(container)
            self.network.connect(container, aliases=[name] + list(aliases or []))
            container.start()
            self.containers[name] = container
            return container
    return NodePortStack


def _NodePortStack(prefix, client):
    return _node_port_stack_class()(prefix, client)


def cmd_start(state_dir, nodes):
    os.makedirs(state_dir, exist_ok=True)
    url_file = os.path.join(state_dir, "url")
    if os.path.exists(url_file):
        os.remove(url_file)
    if os.fork():
        for _attempt in range(300):
            if os.path.exists(url_file):
                print(open(url_file).read())
                return
            time.sleep(0.1)
        sys.exit("standin_cluster.py: the stand-in did not start; see %s/cluster.log" % state_dir)
    os.setsid()
    if os.fork():
        os._exit(0)
    log = open(os.path.join(state_dir, "cluster.log"), "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    with open(os.path.join(state_dir, "pid"), "w") as f:
        f.write(str(os.getpid()))
    cluster = Cluster(state_dir, nodes)
    signal.signal(signal.SIGTERM, lambda *_: cluster.stop())
    cluster.start()
    cluster.run()
    os.remove(os.path.join(state_dir, "pid"))
    os._exit(0)


def cmd_stop(state_dir):
    pid_file = os.path.join(state_dir, "pid")
    if os.path.exists(pid_file):
        pid = int(open(pid_file).read())
        try:
            os.kill(pid, signal.SIGTERM)
            for _attempt in range(600):
                if not os.path.exists(pid_file):
                    break
                time.sleep(0.1)
            else:
                sys.exit("standin_cluster.py: pid %d did not stop" % pid)
        except ProcessLookupError:
            os.remove(pid_file)
    # A daemon that died leaves its containers and network: remove them by their label.
    prefix_file = os.path.join(state_dir, "prefix")
    if os.path.exists(prefix_file):
        import docker
        from stack import LABEL
        prefix = open(prefix_file).read().strip()
        client = docker.from_env()
        for container in client.containers.list(all=True, filters={"label": "%s=%s" % (LABEL, prefix)}):
            container.remove(force=True, v=True)
        for network in client.networks.list(filters={"label": "%s=%s" % (LABEL, prefix)}):
            network.remove()
        os.remove(prefix_file)
    print("stopped")


def cmd_freeport(path):
    """A free TCP port on 127.0.0.1 in the NodePort range, written to path (kept if it exists)."""
    import random
    import socket
    if os.path.exists(path):
        print(open(path).read().strip())
        return
    ports = list(range(30000, 32768))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        with open(path, "w") as f:
            f.write(str(port))
        print(port)
        return
    sys.exit("no free port in 30000-32767")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["start", "stop", "freeport"])
    parser.add_argument("state_dir")
    parser.add_argument("--node", action="append", default=[])
    args = parser.parse_args()
    if args.command == "start":
        if not args.node:
            parser.error("start needs at least one --node")
        cmd_start(os.path.abspath(args.state_dir), args.node)
    elif args.command == "freeport":
        cmd_freeport(os.path.abspath(args.state_dir))
    else:
        cmd_stop(os.path.abspath(args.state_dir))


if __name__ == "__main__":
    main()
