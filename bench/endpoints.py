"""Which endpoints an MLflow server serves: one request per endpoint family, logged in as the
MLflow client is. An endpoint is served when it answers neither 404/405 (no such route under
this server) nor 5xx. MLflow's FastAPI-only routers (OTLP trace ingest, jobs, AI gateway, MCP
registry, server info) answer 404 under gunicorn's sync workers, which serve the Flask app
alone. Used by bench/throughput.py beside each figure and by the stack tests.

    python bench/endpoints.py --uri http://127.0.0.1:PORT   (MLFLOW_TRACKING_USERNAME/PASSWORD)
"""
from __future__ import annotations

import argparse
import json
import os

# (name, method, path, JSON body or None); FASTAPI marks the routes MLflow serves only from
# its FastAPI app (mlflow/server/fastapi_app.py of MLflow 3.17).
CHECKS = [
    ("health", "GET", "/health", None),
    ("version", "GET", "/version", None),
    ("ui", "GET", "/", None),
    ("experiments search", "POST", "/api/2.0/mlflow/experiments/search", {"max_results": 1}),
    ("runs search", "POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": ["0"], "max_results": 1}),
    ("registered models", "GET", "/api/2.0/mlflow/registered-models/search", None),
    ("ajax experiment", "GET", "/ajax-api/2.0/mlflow/experiments/get?experiment_id=0", None),
    ("artifacts list", "GET", "/api/2.0/mlflow-artifacts/artifacts", None),
    ("current user", "GET", "/api/2.0/mlflow/users/current", None),
    ("otlp traces", "POST", "/v1/traces", None),
    ("jobs search", "POST", "/ajax-api/3.0/jobs/search", {}),
    ("gateway models", "GET", "/gateway/mlflow/v1/models", None),
    ("mcp registry", "GET", "/api/3.0/mlflow/mcp-servers", None),
    ("server info", "GET", "/ajax-api/3.0/mlflow/server-info", None),
]
FASTAPI = {"otlp traces", "jobs search", "gateway models", "mcp registry", "server info"}


def check(uri: str, auth=None) -> dict:
    """{name: status code} for every check."""
    import requests

    session = requests.Session()
    session.auth = auth or ((os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
                            if os.environ.get("MLFLOW_TRACKING_USERNAME") else None)
    statuses = {}
    for name, method, path, body in CHECKS:
        kwargs = {"json": body} if body is not None else {}
        if name == "otlp traces":  # an empty OTLP export request
            kwargs = {"data": b"", "headers": {"Content-Type": "application/x-protobuf"}}
        statuses[name] = session.request(method, uri.rstrip("/") + path, timeout=30, **kwargs).status_code
    return statuses


def served(statuses: dict) -> list:
    return [name for name, status in statuses.items() if status not in (404, 405) and status < 500]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    statuses = check(parser.parse_args().uri)
    print(json.dumps({"statuses": statuses, "served": len(served(statuses)), "of": len(CHECKS)}))


if __name__ == "__main__":
    main()
