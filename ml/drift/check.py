"""A drift check: two snapshots (+ the registered model, when there is one) -> a report folder
under ``<state_dir>/reports/drift/<output-id>/`` (report.html, PNG plots, drift.json), logged to
MLflow as a run of the experiment with the report as artifacts.

The output id fingerprints both snapshots, the model version and the drift settings: re-checking
the same pair reuses the completed report (and logs nothing new to MLflow).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pyarrow.parquet as pq

from core import outputs, storage
from core.provenance import code_version, fingerprint
from core.schema import LABEL
from core.settings import Settings
from features.definitions import DEFINITIONS, RegionAgg
from features.snapshot import Snapshot, open_snapshot
from ml import registry
from ml.drift import html_report, measures
from ml.registry import LoadedModel

log = logging.getLogger(__name__)

RESULT = "drift.json"
Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class DriftCheck:
    output: outputs.Output
    summary: dict[str, Any]

    @property
    def status(self) -> str:
        return self.summary["status"]

    @property
    def exit_code(self) -> int:
        return measures.EXIT_CODES[self.status]

    @property
    def report(self) -> str:
        return storage.join(self.output.uri, "report.html")


def reports_root(settings: Settings) -> str:
    return storage.join(settings.reports_uri, "drift")


def load_sample(snapshot: Snapshot, columns: list[str], max_rows: int, seed: int = 0) -> Columns:
    """The named columns of a snapshot, a seeded row sample when it has more than ``max_rows``."""
    fs, path = storage.resolve(snapshot.data_uri)
    table = pq.read_table(path, filesystem=fs, columns=columns)
    if table.num_rows > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(table.num_rows, max_rows, replace=False))
        table = table.take(pick)
    return {c: table.column(c).to_numpy() for c in columns}


def _model(settings: Settings, ref: str | None) -> tuple[LoadedModel | None, str | None]:
    if ref is None:
        return None, "no model given: prediction drift not checked"
    try:
        return registry.load(settings, ref), None
    except registry.ModelNotFound as e:
        return None, f"prediction drift not checked: {e}"


def check_drift(settings: Settings, reference_ref: str, current_ref: str,
                model_ref: str | None = registry.CHAMPION, force: bool = False) -> DriftCheck:
    reference, current = open_snapshot(settings, reference_ref), open_snapshot(settings, current_ref)
    model, model_note = _model(settings, model_ref)
    output_id = f"{reference.id}--{current.id}-" + fingerprint(
        model.version if model else None, settings.drift.model_dump(), code_version())

    def write(tmp: str) -> dict[str, Any]:
        result, samples, predictions = compare(reference, current, model, settings)
        if model_note:
            result.notes.append(model_note)
        context = {"output id": output_id, "model version": model.version if model else "none",
                   "reference as of": reference.manifest.get("as_of"), "current as of": current.manifest.get("as_of")}
        with storage.local_output(tmp) as local:
            out = Path(local)
            plots = html_report.plot(result, *samples, predictions, settings.drift, out)
            html_report.write_html(result, settings.drift, plots, out, context)
        return {"run_id": output_id, "model_version": model.version if model else None, **result.to_json()}

    output, summary = outputs.publish_summarised(reports_root(settings), output_id, write, RESULT, force)
    checked = DriftCheck(output, summary)
    if output.built:
        log_to_mlflow(settings, checked)
    return checked


def compare(reference: Snapshot, current: Snapshot, model: LoadedModel | None, settings: Settings,
            ) -> tuple[measures.DriftResult, tuple[Columns, Columns], tuple[np.ndarray, np.ndarray] | None]:
    """The drift result, the column samples it was computed on, and the two prediction arrays."""
    ref_names, cur_names = reference.feature_set.names, set(current.feature_set.names)
    names = [n for n in ref_names if n in cur_names]
    notes = [f"features only in one snapshot, not compared: {sorted(set(ref_names) ^ cur_names)}"] \
        if len(names) != len(ref_names) or len(names) != len(cur_names) else []
    with_label = reference.has_label and current.has_label
    columns = names + ([LABEL] if with_label else [])
    ref = load_sample(reference, columns, settings.drift.max_rows)
    cur = load_sample(current, columns, settings.drift.max_rows)
    features = measures.compare_features(ref, cur, names, settings.drift, context_features())
    rows = {"reference": len(ref[names[0]]), "current": len(cur[names[0]])}
    result = measures.DriftResult(reference.id, current.id, rows, features, notes=notes)
    predictions = None
    if model is not None and set(model.features.names) <= set(names):
        predictions = predict(model, ref), predict(model, cur)
        result.prediction = measures.prediction_drift(*predictions, settings.drift)
    elif model is not None:
        result.notes.append("the model needs features a snapshot lacks: prediction drift not checked")
    if with_label:
        result.label = measures.label_drift(ref[LABEL].astype(np.float64), cur[LABEL].astype(np.float64),
                                            settings.drift)
    return result, (ref, cur), predictions


def predict(model: LoadedModel, columns: Columns) -> np.ndarray:
    return model.booster.inplace_predict(np.column_stack([columns[n] for n in model.features.names]).astype(np.float32))


def context_features() -> frozenset[str]:
    """Features of the generated business computed per region (market context), not per customer."""
    return frozenset(d.spec.name for d in DEFINITIONS if isinstance(d.compute, RegionAgg))


def log_to_mlflow(settings: Settings, checked: DriftCheck) -> None:
    """One MLflow run per drift check: levels and statistics as metrics, the report as artifacts."""
    s = checked.summary
    registry.setup(settings)
    with mlflow.start_run(run_name=f"drift {s['current']} vs {s['reference']}"):
        mlflow.set_tags({"kind": "drift", "drift_status": s["status"], "drift_run": s["run_id"]})
        mlflow.log_params({"reference": s["reference"], "current": s["current"], "model_version": s["model_version"]})
        metrics = {"status_code": measures.EXIT_CODES[s["status"]],
                   **{f"features_{level}": n for level, n in s["feature_levels"].items()},
                   **{f"psi.{f['feature']}": f["psi"] for f in s["features"]}}
        if s["prediction"]:
            metrics.update(prediction_psi=s["prediction"]["psi"], prediction_ks=s["prediction"]["ks"])
        if s["label"]:
            metrics["label_relative_change"] = s["label"]["relative_change"]
        mlflow.log_metrics(metrics)
        with storage.local_copy(checked.output.uri) as local:
            mlflow.log_artifacts(local, artifact_path="drift_report")
