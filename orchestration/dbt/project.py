"""The dbt project (transformation/) and how settings become dbt vars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from orchestration.settings import SyncSettings

TRANSFORMATION_DIR = Path(__file__).resolve().parents[2] / "transformation"

dbt_project = DbtProject(project_dir=TRANSFORMATION_DIR, profiles_dir=TRANSFORMATION_DIR)


def dbt_executable() -> str:
    """The dbt of this interpreter's environment, also when the venv is not activated (PATH)."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else "dbt"


def ensure_manifest() -> Path:
    """The manifest is made by `make` and the image build; parse here if someone skipped that,
    so the code location never fails to load for want of it."""
    if not dbt_project.manifest_path.exists():
        subprocess.run([dbt_executable(), "parse", "--quiet", "--project-dir", str(TRANSFORMATION_DIR),
                        "--profiles-dir", str(TRANSFORMATION_DIR)], check=True, cwd=TRANSFORMATION_DIR)
    return dbt_project.manifest_path


def dbt_vars(settings: SyncSettings) -> dict[str, object]:
    """The env settings that shape silver (see transformation/dbt_project.yml vars)."""
    return {
        "part_key_fields": ",".join(settings.part_key_fields),
        "ipn_prefix": settings.part_ipn_prefix,
        "bambuddy_enabled": settings.bambuddy_enabled,
        "match_window_minutes": settings.match_window_minutes,
        # Bambuddy archives 1-3 min after a print starts (FTP retries); a completed print it has
        # not archived after this long is stocked from the logger's record (silver_print_jobs.yml).
        "archive_grace_minutes": settings.archive_grace_minutes,
    }


def dbt_env(settings: SyncSettings) -> dict[str, str]:
    # profiles.yml resolves DATA_DIR relative to dbt's working directory (the project dir),
    # so hand it an absolute path.
    return {"DATA_DIR": str(settings.data_dir.resolve())}
