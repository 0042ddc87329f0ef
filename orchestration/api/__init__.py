"""The sync HTTP API on :8088, compatible with the original Bambuddy -> InvenTree sync sidecar."""
