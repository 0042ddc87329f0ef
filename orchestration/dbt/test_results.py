"""What the dbt build's data tests said, for the sync API and the Dagster run.

Every data test runs with severity warn (transformation/dbt_project.yml), so a failing test never
makes dbt skip the models after it, and so never makes `inventree_stock` skip: issue #15 saw one
join defect stop every push for 44 runs while /sync/status said all was well. Failures stay
visible: each build writes DATA_DIR/dbt_test_failures.json (read by /sync/status and /validate),
and the asset check of a test that guards a push key (print_id, batch, part key, IPN, MQTT job key)
fails with ERROR severity in Dagster; other failing tests show as WARN checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from dagster import AssetCheckResult, AssetCheckSeverity

FAILURES_FILE = "dbt_test_failures.json"
PUSH_MODELS = ("silver_print_jobs", "silver_parts")
PUSH_KEY_COLUMNS = ("print_id", "batch", "part_key", "ipn", "mqtt_job_key")


def guards_push_key(node: Mapping[str, Any]) -> bool:
    model = (node.get("attached_node") or "").rsplit(".", 1)[-1]
    column = node.get("column_name") or ""  # a column, or an expression over columns
    return model in PUSH_MODELS and any(key in column for key in PUSH_KEY_COLUMNS)


def with_push_key_severity(events: Iterable[Any], manifest: Mapping[str, Any]) -> Iterator[Any]:
    """A failed check of a push-key test is an ERROR in Dagster although dbt only warned."""
    nodes = manifest.get("nodes", {})
    for event in events:
        if isinstance(event, AssetCheckResult) and not event.passed:
            unique_id = event.metadata.get("unique_id")
            node = nodes.get(getattr(unique_id, "value", unique_id) or "", {})
            if guards_push_key(node):
                event = AssetCheckResult(passed=False, asset_key=event.asset_key, check_name=event.check_name,
                                         metadata=event.metadata, severity=AssetCheckSeverity.ERROR,
                                         description=event.description)
        yield event


def failures(run_results: Mapping[str, Any] | None, manifest: Mapping[str, Any],
             process_error: str | None = None) -> list[dict[str, Any]]:
    """[{test, model, status, failures, message}] for every test that did not pass and every
    model that errored; empty when all passed."""
    nodes = manifest.get("nodes", {})
    out: list[dict[str, Any]] = []
    for result in (run_results or {}).get("results", []):
        unique_id = result.get("unique_id", "")
        status = result.get("status")
        node = nodes.get(unique_id, {})
        if unique_id.startswith("test."):
            if status in ("pass", "skipped", "success"):
                continue
            kind = "fail" if status == "fail" or (status == "warn" and guards_push_key(node)) else status
            model = (node.get("attached_node") or "").rsplit(".", 1)[-1] or None
        elif unique_id.startswith("model.") and status == "error":
            kind, model = "error", unique_id.rsplit(".", 1)[-1]
        else:
            continue
        out.append({"test": unique_id, "model": model, "status": kind,
                    "failures": int(result.get("failures") or (1 if kind == "error" else 0)),
                    "message": str(result.get("message") or "")})
    if process_error and not any(f["status"] == "error" for f in out):
        out.append({"test": "dbt build", "model": None, "status": "error", "failures": 1, "message": process_error})
    return out


def write_failures(data_dir: Path, entries: list[dict[str, Any]]) -> Path:
    """Atomic: a reader sees the previous list or the new one, whole."""
    path = Path(data_dir) / FAILURES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(entries, indent=1))
    os.replace(tmp, path)
    return path


def model_errors(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["status"] == "error"]


def read_run_results(target_path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(target_path) / "run_results.json").read_text())
    except (OSError, ValueError):
        return None
