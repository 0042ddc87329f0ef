"""dbt models as Dagster assets (groups raw / bronze / silver), dbt data tests as asset checks."""


import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    AssetMaterialization,
    MetadataValue,
    Output,
)
from packaging import version
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from ingestion.raw_schema import ensure_schema
from orchestration.settings import SyncSettings

from .in_process import dbt_in_process
from .upgrade import add_missing_columns
from .project import dbt_env, dbt_executable, dbt_project, dbt_vars, ensure_manifest
from .test_results import failures, model_errors, read_run_results, with_push_key_severity, write_failures

# The Bambuddy raw tables are written by one collector (a multi-asset named bambuddy_archives).
BAMBUDDY_SOURCE_KEYS = {
    "raw_bambuddy_archives": AssetKey("bambuddy_archives"),
    "raw_bambuddy_print_runs": AssetKey("bambuddy_print_runs"),
    "raw_bambuddy_printers": AssetKey("bambuddy_printers"),
}


class PrintfarmDbtTranslator(DagsterDbtTranslator):
    """Models keep their names as keys; raw sources map onto the assets that write them."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            name = dbt_resource_props["name"]
            return BAMBUDDY_SOURCE_KEYS.get(name, AssetKey(name))
        return AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> Optional[str]:
        if dbt_resource_props["resource_type"] == "source":
            return "raw"
        fqn = dbt_resource_props.get("fqn", [])
        for layer in ("bronze", "silver"):
            if layer in fqn:
                return layer
        return None


# The logger (ingestion/) writes it; the scheduler sensor watches it for ended jobs. An external
# asset: nothing in Dagster materializes it (an observable source would be a beta API).
raw_printer_jobs = AssetSpec(
    "raw_printer_jobs", group_name="raw",
    description="Jobs written by the MQTT logger (ingestion/) into DATA_DIR/print_history.db.")


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    dagster_dbt_translator=PrintfarmDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    # dbt unit tests check the SQL, not the data: they run in the test suite, not in production runs.
    exclude="resource_type:unit_test",
)
def dbt_print_history_assets(context: AssetExecutionContext, dbt: DbtCliResource):
    settings = SyncSettings.from_env()
    ensure_schema(settings.print_history_db)  # a cold start: the logger may not have run yet
    os.environ.update(dbt_env(settings))
    added = add_missing_columns(settings.warehouse_db, dbt_project.manifest_path)
    if added:
        context.log.info(f"warehouse upgraded in place, columns added: {', '.join(added)}")
    args = ["build", "--vars", json.dumps(dbt_vars(settings))]
    # Not dagster-dbt's fetch_row_counts()/fetch_column_metadata(): their thread pool spins on a
    # core while dbt runs and the column fetch queried every node; together they took half of the
    # step (bench/latency.py). Row counts are read here; the column schema comes from the yml.
    # raise_on_error=False: data tests (severity warn) never stop the run; model errors still
    # fail the step below, after dbt_test_failures.json says what failed (test_results.py).
    invocation = dbt.cli(args, context=context, raise_on_error=False)
    try:
        yield from with_push_key_severity(with_row_counts(invocation.stream(), settings.warehouse_db),
                                          invocation.manifest)
        error = invocation.get_error()
        entries = failures(read_run_results(invocation.target_path), invocation.manifest,
                           str(error) if error else None)
        write_failures(settings.data_dir, entries)
        if entries:
            context.log.warning("dbt tests not passing: " + "; ".join(
                f"{e['test']} ({e['status']}, {e['failures']}): {e['message'][:200]}" for e in entries))
        if model_errors(entries):
            raise RuntimeError("dbt build failed: " + "; ".join(
                f"{e['test']}: {e['message'][:300]}" for e in model_errors(entries)))
        keep_partial_parse(invocation.target_path, context)
    finally:
        prune_run_targets(invocation.target_path)


def with_row_counts(events: Iterable[Any], warehouse_db: Path) -> Iterator[Any]:
    """Adds dagster/row_count to each model's materialization (models are tables in `main`)."""
    conn = None
    try:
        for event in events:
            unique_id = event.metadata.get("unique_id") if isinstance(event, (Output, AssetMaterialization)) else None
            if unique_id is not None and unique_id.text.startswith("model."):
                conn = conn or sqlite3.connect(f"file:{warehouse_db}?mode=ro", uri=True, timeout=30)
                table = unique_id.text.rsplit(".", 1)[-1]
                try:
                    (count,) = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()
                    event = event.with_metadata({**event.metadata, "dagster/row_count": MetadataValue.int(count)})
                except sqlite3.Error:
                    pass  # the count is decoration; the model's own result stands
            yield event
    finally:
        if conn is not None:
            conn.close()


PARTIAL_PARSE = "partial_parse.msgpack"


def keep_partial_parse(run_target: Path, context: AssetExecutionContext) -> None:
    """dagster-dbt seeds each run's own target dir with the project's partial_parse.msgpack. That
    file was written at build time with other paths in the profile (DATA_DIR), so every run parsed
    the project in full; handing the run's file back lets the next run parse partially."""
    source, dest = run_target / PARTIAL_PARSE, dbt_project.project_dir / "target" / PARTIAL_PARSE
    try:
        if source.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(source, tmp)
            os.replace(tmp, dest)  # atomic: a run starting now reads the old or the new file, whole
    except OSError as exc:  # a read-only image: runs still work, they only parse in full
        context.log.debug(f"partial parse file not kept: {exc}")


RUN_TARGETS_KEPT = 5
RUN_TARGET_GRACE_SECONDS = 600  # younger than this may belong to a run still going on


def prune_run_targets(run_target: Path, keep: int = RUN_TARGETS_KEPT) -> None:
    """dagster-dbt leaves a target dir of ~3 MB per run (manifest, logs, compiled SQL); at a run
    every few minutes that is most of a GB a day. Keep the newest few for a look at dbt.log."""
    prefix = run_target.name.split("-", 1)[0] + "-"
    runs = [(d.stat().st_mtime, d) for d in run_target.parent.iterdir() if d.is_dir() and d.name.startswith(prefix)]
    runs.sort(reverse=True)
    for mtime, old in runs[keep:]:
        if old != run_target and time.time() - mtime > RUN_TARGET_GRACE_SECONDS:
            shutil.rmtree(old, ignore_errors=True)


class PrintfarmDbtCli(DbtCliResource):
    """DbtCliResource without three per-run costs (a one-print run in process: 9.9 s -> 4.9 s for
    the first two): it runs `dbt --version` in a subprocess only to tell dbt Core from the Fusion
    engine, parses every macro in process for an adapter that only fetch_column_metadata() uses
    (not called here), and starts dbt as a subprocess, which re-imports dbt (in_process.py)."""

    def _own_dbt(self) -> bool:
        return Path(self.dbt_executable) == Path(sys.executable).with_name("dbt")

    @property
    def _cli_version(self):
        if self._own_dbt():
            from dbt.version import __version__  # the dbt of this environment: its own package

            return version.parse(__version__)
        return super()._cli_version  # some other dbt on PATH: ask it

    def cli(self, args, **kwargs):
        if not self._own_dbt():  # another dbt: only its own executable can run it
            return super().cli(args, **kwargs)
        with dbt_in_process():
            return super().cli(args, **kwargs)

    def _initialize_dbt_core_adapter(self, args):
        return None


def dbt_resource() -> DbtCliResource:
    return PrintfarmDbtCli(project_dir=dbt_project, dbt_executable=dbt_executable())
