"""Start the workloads of rendered Kubernetes manifests as Docker containers, the way the
kubelet would run them, through the runtime harness (tests/runtime/stack.py):

- initContainers run first, one at a time, each to exit 0;
- image; `command` -> entrypoint and `args` -> command, with Kubernetes' $(VAR) expansion
  (defined variables only, `$$` escapes); a `command` without `args` drops the image's CMD;
- env with values expanded in order and `secretKeyRef` resolved from the rendered Secrets;
- volumeMounts: a PersistentVolumeClaim becomes a named Docker volume (kept across
  container restarts, like a PV), an emptyDir a tmpfs (a fresh named volume, 0777, when
  several containers of the pod mount it: they share it), a secret volume read-only files;
- further containers of a pod run beside the first in its network namespace (localhost is
  shared, as in a pod); their ports are published with the first container's, the way the
  tests reach a pod port that no NodePort exposes;
- securityContext: runAsUser/runAsGroup, readOnlyRootFilesystem, capabilities drop,
  allowPrivilegeEscalation=false -> no-new-privileges;
- Service names whose selector matches the pod labels become network aliases; a NodePort
  Service's port is published on 127.0.0.1.

- fsGroup, as the kubelet applies it to a volume that supports ownership management (a
  `local` volume, as the issue reads k3s' local-path ones): the fsGroup is a supplementary
  group of every container, and before the pod starts each claim it mounts is walked
  (chgrp to fsGroup, files g+rw, directories g+rwx and setgid; g+r only for a read-only
  mount), unless fsGroupChangePolicy is OnRootMismatch and the root already has the group,
  those bits and setgid. This follows SetVolumeOwnership and requiresPermissionChange in
  kubernetes/pkg/volume/volume_linux.go.

Not emulated (noted in the tests): NetworkPolicy, probes as such (the tests wait on the same
checks), resource limits. A claim's directory starts 0777, the way k3s' local-path
provisioner creates it.
"""

import base64
import re
import tempfile
from pathlib import Path

LOCAL_PATH_HELPER_IMAGE = "mlflow-k3s-test/postgres:15"

# The kubelet's walk (volume_linux.go: rwMask 0660, roMask 0440, execMask 0110, setgid on
# directories), skipped under OnRootMismatch when the root already fits
# (requiresPermissionChange). $1 group, $2 policy, $3 "ro" or "rw".
FS_GROUP_SCRIPT = r"""
set -e
group=$1 policy=$2 mode=$3
want=660; [ "$mode" = ro ] && want=440
if [ "$policy" = OnRootMismatch ] && [ "$(stat -c %g /pv)" = "$group" ]; then
  perms=$(stat -c %a /pv)
  # the root fits when it has setgid and every bit of want|0110
  if [ $(( 0$perms & 02000 )) -ne 0 ] && [ $(( 0$perms & (0$want | 0110) )) -eq $(( 0$want | 0110 )) ]; then exit 0; fi
fi
find /pv -exec chgrp -h "$group" {} +
if [ "$mode" = ro ]; then bits=g+r; else bits=g+rw; fi
find /pv ! -type l ! -type d -exec chmod "$bits" {} +
find /pv -type d -exec chmod "$bits",g+xs {} +
"""


def expand(value, env):
    def repl(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", repl, value)


def find(docs, kind, name=None):
    for d in docs:
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name):
            return d
    raise KeyError((kind, name))


def pod_template(workload):
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


class KubeToDocker:
    # The flow's stand-in cluster turns this off (its node directories stay 0777).
    applies_fs_group = True

    def __init__(self, stack, docs):
        self.stack = stack
        self.docs = docs
        self.pvc_volumes = {}
        self.shared = {}  # emptyDirs several containers of the pod being started mount
        self.secret_dir = Path(tempfile.mkdtemp(prefix="stack-secrets-"))

    def secret_value(self, name, key):
        return base64.b64decode(find(self.docs, "Secret", name)["data"][key]).decode()

    def env(self, container):
        values = {}
        for e in container.get("env", []):
            if "value" in e:
                values[e["name"]] = expand(e["value"], values)
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                values[e["name"]] = self.secret_value(ref["name"], ref["key"])
        return values

    def pvc_volume(self, claim):
        """A named volume per PVC, its root made 0777 as k3s' local-path provisioner does."""
        find(self.docs, "PersistentVolumeClaim", claim)  # the claim must be rendered
        if claim not in self.pvc_volumes:
            volume = self.stack.volume("pvc-" + claim)
            self.stack.client.containers.run(
                LOCAL_PATH_HELPER_IMAGE, entrypoint=["chmod", "0777", "/pv"], user="0", remove=True,
                volumes={volume: {"bind": "/pv", "mode": "rw"}}, network_mode="none")
            self.pvc_volumes[claim] = volume
        return self.pvc_volumes[claim]

    def aliases(self, labels):
        names = []
        for svc in self.docs:
            if svc["kind"] == "Service" and svc["spec"]["selector"].items() <= labels.items():
                # The names cluster DNS gives a Service: short (same namespace only, but the
                # stand-in's network is shared), <svc>.<ns>, <svc>.<ns>.svc and the FQDN.
                name, namespace = svc["metadata"]["name"], svc["metadata"].get("namespace", "default")
                names += [name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
                          f"{name}.{namespace}.svc.cluster.local"]
        return names

    def node_ports(self, labels, container):
        """Container ports that a NodePort Service exposes."""
        named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        ports = []
        for svc in self.docs:
            if svc["kind"] == "Service" and svc["spec"].get("type") == "NodePort" \
                    and svc["spec"]["selector"].items() <= labels.items():
                for p in svc["spec"]["ports"]:
                    target = p.get("targetPort", p["port"])
                    ports.append(named[target] if isinstance(target, str) else target)
        return ports

    def pod_ports(self, containers):
        """The further containers' ports, published with the first one's."""
        return [p["containerPort"] for c in containers for p in c.get("ports", [])]

    def run(self, workload, name, extra_aliases=()):
        """The pod: its init containers one after the other, each to exit 0 (as the kubelet
        runs them), then its containers, the first one's handle returned."""
        template = pod_template(workload)
        pod = template["spec"]
        labels = template["metadata"].get("labels", {})
        if self.applies_fs_group:
            self.apply_fs_group(pod)
        c, *beside = pod["containers"]
        for other in beside:  # the previous pod's, whose volumes are about to go
            if f"{name}-{other['name']}" in self.stack.containers:
                self.stack.containers.pop(f"{name}-{other['name']}").remove(force=True)
        self.shared = self.shared_empty_dirs(pod, name)
        for init in pod.get("initContainers", []):
            init_name = f"{name}-init-{init['name']}"
            if init_name in self.stack.containers:
                self.stack.containers.pop(init_name).remove(force=True)
            self.stack.start(init_name, **self.container_args(pod, init, init_name))
            code = self.stack.container(init_name).wait(timeout=300)["StatusCode"]
            if code != 0:
                raise RuntimeError(f"init container {init['name']} of {name} exited {code}:\n"
                                   + self.stack.logs(init_name)[-3000:])
        ports = self.node_ports(labels, c) + self.pod_ports(beside)
        main = self.stack.start(name, aliases=self.aliases(labels) + list(extra_aliases),
                                ports=ports, **self.container_args(pod, c, name))
        for other in beside:
            self.stack.start(f"{name}-{other['name']}", beside=name,
                             **self.container_args(pod, other, f"{name}-{other['name']}"))
        return main

    def shared_empty_dirs(self, pod, name):
        """{volume name: Docker volume} for the emptyDirs more than one container mounts."""
        mounted_by = {}
        for c in pod.get("initContainers", []) + pod["containers"]:
            for m in c.get("volumeMounts", []):
                mounted_by.setdefault(m["name"], set()).add(c["name"])
        shared = {}
        for v in pod.get("volumes", []):
            if "emptyDir" in v and len(mounted_by.get(v["name"], ())) > 1:
                full = f"{self.stack.prefix}-{name}-{v['name']}"
                try:  # a new pod gets a new, empty directory
                    self.stack.client.volumes.get(full).remove(force=True)
                except Exception:
                    pass
                shared[v["name"]] = self.stack.volume(f"{name}-{v['name']}")
                self.stack.client.containers.run(
                    LOCAL_PATH_HELPER_IMAGE, entrypoint=["chmod", "0777", "/pv"], user="0", remove=True,
                    volumes={shared[v["name"]]: {"bind": "/pv", "mode": "rw"}}, network_mode="none")
        return shared

    def apply_fs_group(self, pod):
        sc = pod.get("securityContext", {})
        if sc.get("fsGroup") is None:
            return
        mounts = [m for c in pod.get("initContainers", []) + pod["containers"] for m in c.get("volumeMounts", [])]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for claim, read_only in {volumes[m["name"]]["persistentVolumeClaim"]["claimName"]:
                                 m.get("readOnly") or volumes[m["name"]]["persistentVolumeClaim"].get("readOnly")
                                 for m in mounts if "persistentVolumeClaim" in volumes[m["name"]]}.items():
            self.stack.client.containers.run(
                LOCAL_PATH_HELPER_IMAGE, entrypoint=["sh", "-c", FS_GROUP_SCRIPT, "fsgroup", str(sc["fsGroup"]),
                                                     sc.get("fsGroupChangePolicy", "Always"), "ro" if read_only else "rw"],
                user="0", remove=True, volumes={self.pvc_volume(claim): {"bind": "/pv", "mode": "rw"}}, network_mode="none")

    def container_args(self, pod, c, name):
        env = self.env(c)
        command = [expand(a, env) for a in c.get("command", [])]
        args = [expand(a, env) for a in c.get("args", [])]
        if command:
            entrypoint, cmd = command[:1], command[1:] + args
        else:
            entrypoint, cmd = None, args or None
        pod_sc = pod.get("securityContext", {})
        sc = c.get("securityContext", {})
        user = None
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if uid is not None:
            gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
            user = f"{uid}:{gid}" if gid is not None else str(uid)
        volumes_by_name = {v["name"]: v for v in pod.get("volumes", [])}
        binds, tmpfs = {}, {}
        for m in c.get("volumeMounts", []):
            v = volumes_by_name[m["name"]]
            if "persistentVolumeClaim" in v:
                # the kubelet mounts read-only when the mount or the pod's claim volume says so, and
                # never copies the image's files into a volume (Docker does, unless nocopy)
                read_only = m.get("readOnly") or v["persistentVolumeClaim"].get("readOnly")
                source = self.pvc_volume(v["persistentVolumeClaim"]["claimName"])
                binds[source] = {"bind": m["mountPath"],
                                 "mode": ("ro" if read_only else "rw") + ("" if source.startswith("/") else ",nocopy")}
            elif "emptyDir" in v and m["name"] in self.shared:
                binds[self.shared[m["name"]]] = {"bind": m["mountPath"], "mode": ("ro" if m.get("readOnly") else "rw") + ",nocopy"}
            elif "emptyDir" in v:
                tmpfs[m["mountPath"]] = "mode=1777"
            elif "secret" in v:
                target = self.secret_dir / f"{name}-{m['name']}"
                target.mkdir(parents=True, exist_ok=True)
                secret = v["secret"]
                items = secret.get("items") or [{"key": k, "path": k} for k in find(self.docs, "Secret", secret["secretName"])["data"]]
                for item in items:
                    f = target / item["path"]
                    f.write_text(self.secret_value(secret["secretName"], item["key"]))
                    f.chmod(0o444)
                binds[str(target)] = {"bind": m["mountPath"], "mode": "ro"}
            else:
                raise NotImplementedError(v)
        extra = {}
        if self.applies_fs_group and pod_sc.get("fsGroup") is not None:
            extra["group_add"] = [str(pod_sc["fsGroup"])]
        if sc.get("capabilities", {}).get("drop") == ["ALL"]:
            extra["cap_drop"] = ["ALL"]
        if sc.get("allowPrivilegeEscalation") is False:
            extra["security_opt"] = ["no-new-privileges"]
        return dict(image=c["image"], env=env, command=cmd, entrypoint=entrypoint, volumes=binds, user=user,
                    read_only=bool(sc.get("readOnlyRootFilesystem")), tmpfs=tmpfs, **extra)
