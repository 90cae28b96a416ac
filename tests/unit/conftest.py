import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".collections")

if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "homelab", "mlflow_k3s")):
    raise RuntimeError("run `make setup` first: it links this checkout into .collections")
sys.path.insert(0, COLLECTIONS)
# tests/manifests.py, the render helper the unit tests share.
sys.path.insert(0, os.path.join(ROOT, "tests"))
