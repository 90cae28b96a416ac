"""The Grafana dashboard (dashboards/mlflow.json) imports as is: valid JSON in Grafana's
dashboard model, a Prometheus datasource chosen at import, every panel with a query.
That its queries name metrics the server really serves is checked against a live scrape
in the stack test (test_metrics_count_every_logged_call_by_endpoint_on_their_own_port)."""
import json

from manifests import ROOT

DASHBOARD = json.loads((ROOT / "dashboards" / "mlflow.json").read_text())


def test_the_dashboard_is_grafana_json_with_a_datasource_variable():
    assert {"title", "uid", "schemaVersion", "panels", "templating"} <= DASHBOARD.keys()
    assert DASHBOARD.get("id") is None  # an id would clash on import
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "postgres_namespace"} <= variables.keys()


def test_every_panel_queries_prometheus_and_has_a_place_of_its_own():
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
        g = panel["gridPos"]
        here = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & here, panel["title"]
        assert g["x"] + g["w"] <= 24
        cells |= here


def test_the_panels_cover_rate_latency_errors_connections_and_volumes():
    exprs = " ".join(t["expr"] for p in DASHBOARD["panels"] for t in p["targets"])
    for q in ("histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,",
              'status=~"5.."', "by (url_rule)", "mlflow_k3s_db_connections", "mlflow_k3s_db_pool_budget",
              "kubelet_volume_stats_available_bytes"):
        assert q in exprs, q
