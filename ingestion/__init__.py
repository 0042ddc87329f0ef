"""MQTT print-job logger for Bambu Lab printers (no Dagster imports here)."""
