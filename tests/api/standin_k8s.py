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

Refusals of a real API server, for the objects the roles update (each cites its source):
- a PersistentVolumeClaim's spec is immutable but for resources.requests of a bound claim
  (ValidatePersistentVolumeClaimUpdate, kubernetes pkg/apis/core/validation/validation.go);
  a request may not shrink below the claim's capacity (same function), and may only grow
  where the claim's StorageClass has allowVolumeExpansion (the PersistentVolumeClaimResize
  admission plugin, plugin/pkg/admission/storage/persistentvolume/resize/admission.go);
- a Job's spec.selector and spec.template are immutable (ValidateJobSpecUpdate,
  pkg/apis/batch/validation/validation.go);
- a Deployment's spec.selector is immutable in apps/v1 (ValidateDeploymentUpdate,
  pkg/apis/apps/validation/validation.go).
Both dry-run and real updates are refused, as on a real server (validation runs first).
k3s ships one StorageClass, local-path (manifests/local-storage.yaml in k3s-io/k3s): the
default class, WaitForFirstConsumer, and no allowVolumeExpansion; it is created at start.
"""

import asyncio
import copy
import datetime
import json
import threading
import time
import urllib.request
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
    "storage.k8s.io/v1/storageclasses": ("StorageClass", False),
    "apps/v1/deployments": ("Deployment", True),
    "apps/v1/statefulsets": ("StatefulSet", True),
    "batch/v1/jobs": ("Job", True),
    "batch/v1/cronjobs": ("CronJob", True),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True),
    "networking.k8s.io/v1/ingresses": ("Ingress", True),
    # Served by every API server; the roles look for the Prometheus Operator's CRD.
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False),
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
                                                     subresources={"status", "log"} if kind == "Pod" else {"status"})
        self.k8s_version = (1, 36)
        self.log = []          # every request: time, method, action, kind, namespace, name, dry_run
        self.status_log = []   # every status the stand-in controller set: time, kind, name
        self._rv = 0
        self._specs = {}
        self._last = {}
        self._entries = {}
        self.pod_logs = {}     # (namespace, pod name) -> the text GET .../pods/NAME/log returns
        self.objects[kmock.resource("storage.k8s.io/v1/storageclasses"), None, "local-path"] = copy.deepcopy(LOCAL_PATH_CLASS)

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
            if kind == "Pod" and request.subresource == "log":
                return await self._serve_log(key)
            if request.action == enums.action.UPDATE and request.subresource != "status":
                refusal = await self._refusal(request, key)
                if refusal is not None:
                    entry["refused"] = refusal[0]
                    return refusal[1]
            if dry_run and request.action in (enums.action.CREATE, enums.action.UPDATE, enums.action.DELETE):
                return await self._dry_run(request, key)
        return await super()._handle(request)

    async def _serve_log(self, key):
        async with self._lock:
            live = key in self.objects and not self.objects[key].deleted
        if not live:
            return _status(404, "NotFound", f'pods "{key[2]}" not found')
        return aiohttp.web.Response(text=self.pod_logs.get((key[1], key[2]), ""))

    async def _refusal(self, request, key):
        """The API server's answer to an update it refuses, or None (see the module doc)."""
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return None
            old = copy.deepcopy(self.objects[key].raw)
            new = dicts.patch_dict(copy.deepcopy(old), request.data or {})
            classes = {name: copy.deepcopy(obj.raw) for (resource, _ns, name), obj in self.objects.items()
                       if self.kind_of(resource) == "StorageClass" and not obj.deleted}
        kind, name = self.kind_of(request.resource), key[2]
        old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
        if kind == "PersistentVolumeClaim":
            return _pvc_refusal(name, old, new, classes)
        if kind == "Job":
            for field in ("selector", "template"):
                if field in old_spec and old_spec.get(field) != new_spec.get(field):
                    return _invalid("Job.batch", name, f"spec.{field}", "field is immutable")
        if kind == "Deployment" and old_spec.get("selector") != new_spec.get("selector"):
            return _invalid("Deployment.apps", name, "spec.selector", "field is immutable")
        return None

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
        """{(kind, namespace, name): object} of every live object but those k3s ships."""
        result = {}
        for (resource, namespace, name), obj in self.objects.items():
            if not obj.deleted and (self.kind_of(resource), name) != ("StorageClass", "local-path"):
                result[(self.kind_of(resource), namespace, name)] = copy.deepcopy(obj.raw)
        return result


def _status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message, "details": details or {}}
    return aiohttp.web.json_response(body, status=code)


def _invalid(kind, name, field, detail):
    message = f'{kind} "{name}" is invalid: {field}: {detail}'
    return 422, _status(422, "Invalid", message, {"name": name, "causes": [{"field": field, "message": detail}]})


def quantity_bytes(value):
    """A Kubernetes storage quantity (binary or decimal suffix) in bytes."""
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
                "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
    value = str(value)
    for suffix, factor in suffixes.items():
        if value.endswith(suffix):
            return float(value[:-len(suffix)]) * factor
    return float(value)


def _pvc_refusal(name, old, new, classes):
    old_spec, new_spec = old.get("spec", {}), new.get("spec", {})
    bound = old.get("status", {}).get("phase") == "Bound"
    ignored = ("resources", "volumeAttributesClassName") if bound else ()
    if {k: v for k, v in old_spec.items() if k not in ignored} != {k: v for k, v in new_spec.items() if k not in ignored}:
        what = "resources.requests and volumeAttributesClassName for bound claims"
        return _invalid("PersistentVolumeClaim", name, "spec",
                        f"Forbidden: spec is immutable after creation except {what}")
    old_size = old_spec.get("resources", {}).get("requests", {}).get("storage")
    new_size = new_spec.get("resources", {}).get("requests", {}).get("storage")
    if old_size == new_size:
        return None
    capacity = old.get("status", {}).get("capacity", {}).get("storage", old_size)
    if quantity_bytes(new_size) < quantity_bytes(capacity):
        return _invalid("PersistentVolumeClaim", name, "spec.resources.requests.storage",
                        "Forbidden: field can not be less than status.capacity")
    storage_class = classes.get(old_spec.get("storageClassName") or "", {})
    if quantity_bytes(new_size) > quantity_bytes(old_size) and not storage_class.get("allowVolumeExpansion"):
        return 403, _status(403, "Forbidden", f'persistentvolumeclaims "{name}" is forbidden: only dynamically '
                            "provisioned pvc can be resized and the storageclass that provisions the pvc must support resize")
    return None


LOCAL_PATH_CLASS = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
}


class StandInController:
    """STAND-IN for the kube-controller-manager/kubelet: after `delay` seconds it reports a
    Deployment's replicas available for its current generation, a claim bound (its
    capacity the request, as local-path provisions it), and a Job complete, or failed for
    Jobs whose name starts with one of `failing_jobs`. A failed Job gets the condition the
    Job controller sets when the backoff limit is reached (reason BackoffLimitExceeded,
    pkg/controller/job/job_controller.go) and a failed Pod labelled as the Job controller
    labels its pods (batch.kubernetes.io/job-name, job-name), whose log is `failing_log`;
    the pods of a deleted Job are deleted (the garbage collector follows ownerReferences)."""

    def __init__(self, api, delay=0.5):
        self.api = api
        self.delay = delay
        self.failing_jobs = []
        self.failing_log = "Traceback (most recent call last):\nalembic.util.exc.CommandError: Can't locate revision\n"
        self._seen = {}

    async def run(self):
        while True:
            await asyncio.sleep(0.1)
            async with self.api._lock:
                for (resource, namespace, name), obj in list(self.api.objects.items()):
                    if obj.deleted:
                        continue
                    kind = self.api.kind_of(resource)
                    if kind == "Pod":
                        self._collect(resource, namespace, name, obj)
                    if kind not in ("Deployment", "Job", "PersistentVolumeClaim"):
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
                    elif kind == "PersistentVolumeClaim" and status.get("phase") != "Bound":
                        self.api.set_status((resource, namespace, name), {
                            "phase": "Bound", "accessModes": raw["spec"].get("accessModes"),
                            "capacity": {"storage": raw["spec"]["resources"]["requests"]["storage"]}})
                    elif kind == "Job" and not status.get("conditions"):
                        failed = any(name.startswith(prefix) for prefix in self.failing_jobs)
                        condition = {"type": "Complete", "status": "True"}
                        if failed:
                            condition = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit"}
                            self._failed_pod(namespace, name, raw)
                        self.api.set_status((resource, namespace, name), {
                            "succeeded": 0 if failed else 1, "failed": 1 if failed else 0,
                            "conditions": [condition]})
                        self.api.status_log.append({"t": time.monotonic(), "kind": kind, "name": name,
                                                    "condition": condition["type"]})

    def _failed_pod(self, namespace, job, raw):
        pod = f"{job}-{uuid.uuid4().hex[:5]}"
        labels = dict(raw["spec"]["template"].get("metadata", {}).get("labels", {}),
                      **{"batch.kubernetes.io/job-name": job, "job-name": job})
        self.api.objects[kmock.resource("v1/pods"), namespace, pod] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": namespace, "labels": labels, "uid": str(uuid.uuid4()),
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job,
                                              "uid": raw["metadata"]["uid"], "controller": True}]},
            "spec": raw["spec"]["template"]["spec"], "status": {"phase": "Failed"}}
        self.api.pod_logs[(namespace, pod)] = self.failing_log

    def _collect(self, resource, namespace, name, obj):
        owners = {o["uid"] for o in obj.raw.get("metadata", {}).get("ownerReferences", [])}
        live = {o.raw.get("metadata", {}).get("uid") for o in self.api.objects.values() if not o.deleted}
        if owners and not owners & live:
            obj.delete()


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

    def requests(self, since=0, *actions):
        """Requests from index `since` of the log with one of `actions` (not dry-run)."""
        return [e for e in self.api.log[since:] if e["action"] in actions and not e["dry_run"]]

    def merge_patch(self, path, patch):
        """A change by hand (kubectl patch --type merge), through the API."""
        request = urllib.request.Request(self.url + path, data=json.dumps(patch).encode(), method="PATCH",
                                         headers={"Content-Type": "application/merge-patch+json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def writes(self, since=0):
        """Requests from index `since` of the log that changed an object (not dry-run).
        kubernetes.core's client-side apply re-sends every list field in a PATCH even when
        nothing differs; such a no-op PATCH is not a write."""
        return [e for e in self.api.log[since:]
                if e["action"] in ("create", "update", "delete") and not e["dry_run"] and e["changed"]]
