"""Bring an existing warehouse up to the models' columns before dbt builds it.

The incremental models use on_schema_change='fail' (dbt-sqlite has no sync_all_columns), so a
release that adds a column would stop every build of a user's existing warehouse, and with it
every push. Bronze is history that must not be rebuilt, so a full refresh is no answer: the new
columns are added in place (NULL for the rows built before; incremental builds fill new rows).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path


def declared_columns(manifest_path: Path) -> dict[str, list[str]]:
    """Incremental model -> the columns its yml declares (every model documents all of them)."""
    manifest = json.loads(Path(manifest_path).read_text())
    return {node["alias"] or node["name"]: list(node["columns"])
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and node["config"].get("materialized") == "incremental"
            and node["columns"]}


def add_missing_columns(warehouse_db: Path, manifest_path: Path) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for each declared column an existing table lacks; returns what was added."""
    if not Path(warehouse_db).exists():
        return []
    added: list[str] = []
    conn = sqlite3.connect(warehouse_db, timeout=30)
    try:
        for table, columns in declared_columns(manifest_path).items():
            have = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
            if not have:  # not built yet: dbt creates it whole
                continue
            for column in columns:
                if column not in have:
                    conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}"')
                    added.append(f"{table}.{column}")
        conn.commit()
    finally:
        conn.close()
    return added
