"""Dagster code location, sync ledger and sync HTTP API of the printfarm pipeline."""
