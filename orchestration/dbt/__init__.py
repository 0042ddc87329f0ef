"""The dbt side of the code location: the transformation/ project as Dagster assets, and its docs."""
