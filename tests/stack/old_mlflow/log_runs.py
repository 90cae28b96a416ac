"""Run with the MLflow of requirements.txt: creates its schema in the database of argv[1]
and logs what the restore test reads back under the pinned MLflow (JSON on stdout)."""
import json
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

client = MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[1])
experiment = client.create_experiment("made-by-mlflow-2", artifact_location="mlflow-artifacts:/made-by-mlflow-2")
run = client.create_run(experiment, run_name="old-run")
client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (step + 1), 1700000000000 + step, step) for step in range(3)],
                 params=[Param("lr", "0.01")], tags=[RunTag("made-by", mlflow.__version__)])
client.set_terminated(run.info.run_id)
client.create_registered_model("old-model")
version = client.create_model_version("old-model", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
print(json.dumps({"version": mlflow.__version__, "run_id": run.info.run_id, "artifact_uri": run.info.artifact_uri,
                  "model_version": version.version}))
