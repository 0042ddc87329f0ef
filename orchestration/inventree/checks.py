"""The settings verdicts a sync run shows as asset checks, evaluated before the push so that a run
failing on a wrong setting names it beside the failure (and /validate says the same)."""

from __future__ import annotations

from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from orchestration.bambuddy import BambuddyError
from orchestration.settings import SyncSettings

from .client import InvenTreeError


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def inventree_verdict(client: Any, settings: SyncSettings) -> tuple[AssetCheckResult, list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    try:
        client.check()
        if settings.inventree_part_category_id and not client.category_exists(settings.inventree_part_category_id):
            problems.append(f"INVENTREE_PART_CATEGORY_ID={settings.inventree_part_category_id} does not exist: "
                            "create the category or fix the id")
        if settings.inventree_stock_location_id and not client.location_exists(settings.inventree_stock_location_id):
            problems.append(f"INVENTREE_STOCK_LOCATION_ID={settings.inventree_stock_location_id} does not exist: "
                            "create the location or fix the id")
        templates = client.parameter_templates(("Weight", "PrintTime"))
        warnings += [f"parameter template {n!r} missing (values are not recorded)"
                     for n in ("Weight", "PrintTime") if n not in templates]
    except InvenTreeError as exc:
        problems.append(_redact(str(exc), settings.inventree_token))
    if problems:
        return AssetCheckResult(check_name="inventree_settings", passed=False,
                                metadata={"problems": MetadataValue.md("\n".join(problems))}), problems
    if warnings:
        return AssetCheckResult(check_name="inventree_settings", passed=False, severity=AssetCheckSeverity.WARN,
                                metadata={"warnings": MetadataValue.md("\n".join(warnings))}), []
    return AssetCheckResult(check_name="inventree_settings", passed=True), []


def bambuddy_verdict(bambuddy: Any, settings: SyncSettings) -> tuple[AssetCheckResult, list[str]]:
    if not settings.bambuddy_enabled:
        return AssetCheckResult(check_name="bambuddy_access", passed=True,
                                metadata={"note": "BAMBUDDY_BASE_URL not set (MQTT-only mode)"}), []
    try:
        bambuddy.get_client().check(write=settings.sync_archive_external_link)
    except BambuddyError as exc:
        problem = _redact(str(exc), settings.bambuddy_api_key)
        return AssetCheckResult(check_name="bambuddy_access", passed=False, metadata={"problem": problem}), [problem]
    return AssetCheckResult(check_name="bambuddy_access", passed=True), []
