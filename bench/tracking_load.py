"""Tracking load generator: the same operation mix against an MLflow server over HTTP,
or in-process against MLflow's SqlAlchemyStore (the ceiling, no HTTP at all).

One iteration of one client: create a run, log_batch of BATCH metric points, SINGLE
single log_metric calls, upload a small artifact, finish the run. Each client is a
thread (or, with --processes, a process: threads in one Python share its GIL) with its
own HTTP connection (keep-alive), like a training script, logged in as the MLflow client
is (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD). A level runs for a bounded
time and a bounded number of iterations, then stops by itself.

    python bench/tracking_load.py --uri http://127.0.0.1:PORT --clients 1,4,16 [--processes]
    python bench/tracking_load.py --store postgresql+psycopg2://... --clients 1,4,16

Prints one JSON object per level (the driver, bench/throughput.py, tabulates them).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import uuid

BATCH = 50
SINGLE = 5
ARTIFACT = os.urandom(2048)


class HttpTracker:
    """What the MLflow client does, over MLflow's REST API."""

    def __init__(self, uri: str):
        import requests

        self.uri = uri.rstrip("/")
        self.session = requests.Session()
        if os.environ.get("MLFLOW_TRACKING_USERNAME"):
            self.session.auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])

    def _post(self, path, body):
        response = self.session.post(self.uri + "/api/2.0/mlflow/" + path, json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def experiment(self, name):
        response = self.session.get(self.uri + "/api/2.0/mlflow/experiments/get-by-name",
                                    params={"experiment_name": name}, timeout=60)
        if response.status_code == 200:
            return response.json()["experiment"]["experiment_id"]
        return self._post("experiments/create", {"name": name})["experiment_id"]

    def create_run(self, experiment_id):
        info = self._post("runs/create", {"experiment_id": experiment_id, "start_time": _now()})["run"]["info"]
        return info["run_id"], info["artifact_uri"]

    def log_batch(self, run_id, points):
        self._post("runs/log-batch", {"run_id": run_id, "metrics": [
            {"key": k, "value": v, "timestamp": t, "step": s} for k, v, t, s in points]})

    def log_metric(self, run_id, key, value, step):
        self._post("runs/log-metric",
                   {"run_id": run_id, "key": key, "value": value, "timestamp": _now(), "step": step})

    def upload(self, run_id, artifact_uri, name, data):
        if artifact_uri.startswith("mlflow-artifacts:"):
            path = artifact_uri.split(":", 1)[1].lstrip("/")
            response = self.session.put("%s/api/2.0/mlflow-artifacts/artifacts/%s/%s" % (self.uri, path, name),
                                        data=data, timeout=120)
            response.raise_for_status()
        else:
            # Not proxied (e.g. file:// as in the original guide): the client writes it itself.
            _write_local(artifact_uri, name, data)

    def finish(self, run_id):
        self._post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": _now()})


class StoreTracker:
    """The same operations in-process through SqlAlchemyStore: no HTTP, no server."""

    _store = None
    _lock = threading.Lock()

    def __init__(self, store_uri: str):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        with StoreTracker._lock:  # one engine and pool for all threads, as a server has
            if StoreTracker._store is None:
                StoreTracker._store = SqlAlchemyStore(store_uri, tempfile.mkdtemp(prefix="mlflow-artifacts-"))
        self.store = StoreTracker._store

    def experiment(self, name):
        found = self.store.get_experiment_by_name(name)
        return found.experiment_id if found else self.store.create_experiment(name)

    def create_run(self, experiment_id):
        run = self.store.create_run(experiment_id, user_id="bench", start_time=_now(), tags=[], run_name=None)
        return run.info.run_id, run.info.artifact_uri

    def log_batch(self, run_id, points):
        from mlflow.entities import Metric

        self.store.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in points], params=[], tags=[])

    def log_metric(self, run_id, key, value, step):
        from mlflow.entities import Metric

        self.store.log_metric(run_id, Metric(key, value, _now(), step))

    def upload(self, run_id, artifact_uri, name, data):
        _write_local(artifact_uri, name, data)

    def finish(self, run_id):
        from mlflow.entities import RunStatus

        self.store.update_run_info(run_id, RunStatus.FINISHED, _now(), None)


def _now():
    return int(time.time() * 1000)


def _write_local(artifact_uri, name, data):
    path = artifact_uri[len("file://"):] if artifact_uri.startswith("file://") else artifact_uri
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


def _client_loop(make, experiment_id, deadline, max_iterations, out):
    tracker = make()
    lat = {"create_run": [], "log_batch": [], "log_metric": [], "upload": [], "finish": []}
    errors = 0
    iterations = 0

    def timed(op, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        lat[op].append(time.perf_counter() - started)
        return result

    while time.monotonic() < deadline and iterations < max_iterations:
        try:
            run_id, artifact_uri = timed("create_run", tracker.create_run, experiment_id)
            timed("log_batch", tracker.log_batch, run_id,
                  [("loss", 1.0 / (i + 1), _now(), i) for i in range(BATCH)])
            for step in range(SINGLE):
                timed("log_metric", tracker.log_metric, run_id, "acc", step / SINGLE, step)
            timed("upload", tracker.upload, run_id, artifact_uri, "sample.bin", ARTIFACT)
            timed("finish", tracker.finish, run_id)
            iterations += 1
        except Exception:  # noqa: BLE001 - a load generator counts failures, it does not stop on them
            errors += 1
            if errors > 50:
                break
    out.append((lat, errors, iterations))


def _process_client(make, experiment_id, deadline, max_iterations, queue):
    if StoreTracker._store is not None:  # the parent's pooled connections stay the parent's
        StoreTracker._store.engine.dispose(close=False)
    out: list = []
    _client_loop(make, experiment_id, deadline, max_iterations, out)
    queue.put(out[0])


def run_level(make, clients: int, seconds: float, max_iterations: int, processes: bool = False) -> dict:
    experiment_id = make().experiment("bench-%s" % uuid.uuid4().hex[:8])
    results: list = []
    started = time.monotonic()
    deadline = started + seconds
    if processes:
        queue = multiprocessing.get_context("fork").Queue()
        workers = [multiprocessing.get_context("fork").Process(
            target=_process_client, args=(make, experiment_id, deadline, max_iterations, queue))
            for _client in range(clients)]
        for worker in workers:
            worker.start()
        results = [queue.get(timeout=seconds + 300) for _worker in workers]
    else:
        workers = [threading.Thread(target=_client_loop, args=(make, experiment_id, deadline, max_iterations, results))
                   for _client in range(clients)]
        for worker in workers:
            worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    all_lat: dict[str, list] = {}
    for lat, _errors, _iterations in results:
        for op, values in lat.items():
            all_lat.setdefault(op, []).extend(values)
    requests_done = sum(len(v) for v in all_lat.values())
    iterations = sum(i for _lat, _errors, i in results)
    every = sorted(x for v in all_lat.values() for x in v)
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(requests_done / elapsed, 1),
        "metric_points_per_s": round(iterations * (BATCH + SINGLE) / elapsed, 1),
        "p50_ms": _ms(_pct(every, 50)),
        "p95_ms": _ms(_pct(every, 95)),
        "log_metric_p50_ms": _ms(_pct(sorted(all_lat.get("log_metric", [])), 50)),
        "log_metric_p95_ms": _ms(_pct(sorted(all_lat.get("log_metric", [])), 95)),
        "errors": sum(e for _lat, e, _iterations in results),
        "iterations": iterations,
    }


def _pct(values, pct):
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _ms(seconds):
    return round(seconds * 1000, 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--uri", help="tracking server base URL (HTTP)")
    target.add_argument("--store", help="SQLAlchemy URI for the in-process SqlAlchemyStore")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--max-iterations", type=int, default=2000, help="per client and level")
    parser.add_argument("--processes", action="store_true", help="a process per client instead of a thread")
    args = parser.parse_args()
    if args.uri:
        def make():
            return HttpTracker(args.uri)
    else:
        def make():
            return StoreTracker(args.store)
    for clients in [int(c) for c in args.clients.split(",")]:
        print(json.dumps(dict(run_level(make, clients, args.seconds, args.max_iterations, args.processes),
                              processes=args.processes)), flush=True)


if __name__ == "__main__":
    main()
