"""Everything that talks to InvenTree: client, push logic, Dagster assets and resource."""
