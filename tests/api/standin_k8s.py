"""STAND-IN for the Kubernetes API server of k3s: kmock's KubernetesEmulator on 127.0.0.1,
with the small fixes it needs to serve kubernetes.core.k8s, plus a STAND-IN controller that
sets the status a real cluster's controllers would (so `wait: true` has something to wait for).

What the emulator proves: which objects the roles send, their content, the order, and that
the client-side apply path is idempotent. What it does not: defaulting, validation,
strategic merge, admission, scheduling, or any container actually running (see L3b).

Fixes over kmock 0.8 (each one a gap seen with kubernetes.core 6.2):
- `/api/v1/namespaces[/name]` is parsed as the cluster-scoped `namespaces` resource
  (kmock reads `namespaces` as the namespace prefix and fails);
- list responses carry `kind: <Kind>List` and `apiVersion` (the dynamic client needs them);
- `dryRun` requests (`--check`) return the would-be object without storing it;
- server-set metadata: uid, creationTimestamp, resourceVersion, generation (bumped when
  `spec` changes), so `observedGeneration` means what it means on a real server;
- `/version` reports the pinned k3s release.
"""

import asyncio
import copy
import datetime
import json
import threading
import time
import uuid

import aiohttp.web
import kmock
from kmock._internal import dicts, enums, parsing

# group/version/plural -> (kind, namespaced)
RESOURCES = {
    "v1/namespaces": ("Namespace", False),
    "v1/secrets": ("Secret", True),
    "v1/configmaps": ("ConfigMap", True),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "v1/services": ("Service", True),
    "v1/pods": ("Pod", True),
    "apps/v1/deployments": ("Deployment", True),
    "apps/v1/statefulsets": ("StatefulSet", True),
    "batch/v1/jobs": ("Job", True),
    "batch/v1/cronjobs": ("CronJob", True),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True),
    "networking.k8s.io/v1/ingresses": ("Ingress", True),
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]

_original_parse_path = parsing.parse_path


def _parse_path(path):
    parts = path.strip("/").split("/")
    # /api/v1/namespaces, /api/v1/namespaces/<name>, /api/v1/namespaces/<name>/status
    if len(parts) >= 3 and parts[0] == "api" and parts[2] == "namespaces" and (
            len(parts) <= 4 or (len(parts) == 5 and parts[4] in ("status", "finalize"))):
        return parsing.ParsedPath(group="", version=parts[1], plural="namespaces", namespace=None,
                                  name=parts[3] if len(parts) > 3 else None,
                                  subresource=parts[4] if len(parts) > 4 else None)
    return _original_parse_path(path)


parsing.parse_path = _parse_path


class StandInKubernetesAPI(kmock.KubernetesEmulator):
    """STAND-IN Kubernetes API: kmock's emulator with the fixes listed in the module doc."""

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        for key, (kind, namespaced) in RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, verbs=VERBS,
                                                     subresources={"status"})
        self.k8s_version = (1, 36)
        self.log = []          # every request: time, method, action, kind, namespace, name, dry_run
        self.status_log = []   # every status the stand-in controller set: time, kind, name
        self._rv = 0
        self._specs = {}
        self._last = {}
        self._entries = {}

    def kind_of(self, resource):
        for key, (kind, _namespaced) in RESOURCES.items():
            if kmock.resource(key) == resource:
                return kind
        return None

    def _next_rv(self):
        self._rv += 1
        return str(self._rv)

    async def _serve_server_version(self, request):
        major, minor = self.k8s_version
        return {"major": str(major), "minor": str(minor), "gitVersion": f"v{major}.{minor}.0+k3s1",
                "platform": "linux/amd64"}

    async def _serve_list(self, request):
        payload = await super()._serve_list(request)
        kind = self.kind_of(request.resource)
        group = request.resource.group
        payload["kind"] = f"{kind}List"
        payload["apiVersion"] = f"{group}/{request.resource.version}" if group else request.resource.version
        return payload

    def _key(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        meta = data.get("metadata", {})
        kind = self.kind_of(request.resource)
        namespaced = RESOURCES.get(next((k for k in RESOURCES if kmock.resource(k) == request.resource), ""), (None, True))[1]
        namespace = (request.namespace or meta.get("namespace")) if namespaced else None
        return kind, (request.resource, namespace, request.name or meta.get("name"))

    async def _handle(self, request):
        dry_run = "dryRun" in request.params
        if request.resource is not None and request.action is not None:
            kind, key = self._key(request)
            entry = {"t": time.monotonic(), "method": str(request.method.value).upper(),
                     "action": request.action.value.lower(), "kind": kind, "namespace": key[1],
                     "name": key[2], "dry_run": dry_run, "subresource": request.subresource,
                     "body": request.data if request.action == enums.action.UPDATE else None,
                     # create/delete change state; an update only if the object changed
                     "changed": request.action != enums.action.UPDATE}
            self.log.append(entry)
            self._entries[id(request)] = entry
            if dry_run and request.action in (enums.action.CREATE, enums.action.UPDATE, enums.action.DELETE):
                return await self._dry_run(request, key)
        return await super()._handle(request)

    async def _dry_run(self, request, key):
        async with self._lock:
            existing = self.objects[key].raw if key in self.objects and not self.objects[key].deleted else None
        if request.action == enums.action.CREATE:
            if existing is not None:
                return aiohttp.web.json_response({"kind": "Status", "code": 409, "reason": "AlreadyExists"}, status=409)
            return aiohttp.web.json_response(request.data, status=201)
        if existing is None:
            return aiohttp.web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        if request.action == enums.action.UPDATE:
            return aiohttp.web.json_response(dicts.patch_dict(copy.deepcopy(existing), request.data or {}))
        return aiohttp.web.json_response(existing)

    async def _serve_create(self, request):
        key = self._key(request)[1]
        async with self._lock:
            obj = self.objects[key]
            spec = json.dumps(obj.raw.get("spec"), sort_keys=True)
            self._specs[key] = spec
            obj.patch({"metadata": {
                "uid": str(uuid.uuid4()), "resourceVersion": self._next_rv(), "generation": 1,
                "creationTimestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}})
            self._last[key] = json.dumps(obj.raw, sort_keys=True)
        return await super()._serve_create(request)

    async def _serve_update(self, request):
        key = self._key(request)[1]
        async with self._lock:
            obj = self.objects[key]
            # Like a real API server: a patch that changes nothing keeps resourceVersion.
            if not obj.deleted and json.dumps(obj.raw, sort_keys=True) != self._last.get(key):
                spec = json.dumps(obj.raw.get("spec"), sort_keys=True)
                meta = {"resourceVersion": self._next_rv()}
                if request.subresource != "status" and spec != self._specs.get(key):
                    meta["generation"] = int(obj.raw.get("metadata", {}).get("generation", 1)) + 1
                    self._specs[key] = spec
                obj.patch({"metadata": meta})
                self._last[key] = json.dumps(obj.raw, sort_keys=True)
                self._entries[id(request)]["changed"] = True
        return await super()._serve_update(request)

    def set_status(self, key, status):
        """What a controller's status update does (caller holds the lock)."""
        obj = self.objects[key]
        obj.patch({"status": status, "metadata": {"resourceVersion": self._next_rv()}})
        self._last[key] = json.dumps(obj.raw, sort_keys=True)

    # ---- helpers for the tests (called from the test thread through StandInCluster) ----

    def snapshot(self):
        """{(kind, namespace, name): object} of every live object."""
        result = {}
        for (resource, namespace, name), obj in self.objects.items():
            if not obj.deleted:
                result[(self.kind_of(resource), namespace, name)] = copy.deepcopy(obj.raw)
        return result


class StandInController:
    """STAND-IN for the kube-controller-manager/kubelet: after `delay` seconds it reports a
    Deployment's replicas available for its current generation and a Job complete
    (or failed, for Jobs whose name starts with one of `failing_jobs`)."""

    def __init__(self, api, delay=0.5):
        self.api = api
        self.delay = delay
        self.failing_jobs = []
        self._seen = {}

    async def run(self):
        while True:
            await asyncio.sleep(0.1)
            async with self.api._lock:
                for (resource, namespace, name), obj in list(self.api.objects.items()):
                    if obj.deleted:
                        continue
                    kind = self.api.kind_of(resource)
                    if kind not in ("Deployment", "Job"):
                        continue
                    raw = obj.raw
                    generation = raw.get("metadata", {}).get("generation", 1)
                    seen_key = (kind, namespace, name, generation)
                    first = self._seen.setdefault(seen_key, time.monotonic())
                    if time.monotonic() - first < self.delay:
                        continue
                    status = raw.get("status") or {}
                    if kind == "Deployment" and status.get("observedGeneration") != generation:
                        replicas = raw["spec"].get("replicas", 1)
                        self.api.set_status((resource, namespace, name), {
                            "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                            "readyReplicas": replicas, "availableReplicas": replicas, "unavailableReplicas": None})
                        self.api.status_log.append({"t": time.monotonic(), "kind": kind, "name": name})
                    elif kind == "Job" and not status.get("conditions"):
                        failed = any(name.startswith(prefix) for prefix in self.failing_jobs)
                        condition = "Failed" if failed else "Complete"
                        self.api.set_status((resource, namespace, name), {
                            "succeeded": 0 if failed else 1, "failed": 1 if failed else 0,
                            "conditions": [{"type": condition, "status": "True"}]})
                        self.api.status_log.append({"t": time.monotonic(), "kind": kind, "name": name,
                                                    "condition": condition})


class StandInCluster:
    """Runs the stand-in API and controller on 127.0.0.1 in a background thread."""

    def __init__(self, k8s_version=(1, 36), delay=0.5):
        self.k8s_version = k8s_version
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="standin-k8s", daemon=True)

    def call(self, fn, *args):
        async def wrapper():
            async with self.api._lock:
                return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(30)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self):
        self.api = StandInKubernetesAPI()
        self.api.k8s_version = self.k8s_version
        await self.api.__aenter__()
        self.server = kmock.Server(self.api, host="127.0.0.1")
        await self.server.__aenter__()
        self.controller = StandInController(self.api, self.delay)
        self._task = asyncio.get_running_loop().create_task(self.controller.run())

    async def _stop(self):
        self._task.cancel()
        await self.server.__aexit__(None, None, None)
        await self.api.__aexit__(None, None, None)

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.port}"

    def kubeconfig(self, path):
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "standin", "user": {}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}],
        }))
        path.chmod(0o600)
        return path

    def snapshot(self):
        return self.call(self.api.snapshot)

    def writes(self, since=0):
        """Requests from index `since` of the log that changed an object (not dry-run).
        kubernetes.core's client-side apply re-sends every list field in a PATCH even when
        nothing differs; such a no-op PATCH is not a write."""
        return [e for e in self.api.log[since:]
                if e["action"] in ("create", "update", "delete") and not e["dry_run"] and e["changed"]]
