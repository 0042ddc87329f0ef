# One image for every Python service of the pipeline (logger, Dagster code server, webserver and daemon,
# dbt docs, sync API). Tag pinned; a digest cannot be looked up from this build machine.
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock /app/requirements.lock
RUN /opt/venv/bin/pip install -r /app/requirements.lock
COPY pyproject.toml README.md workspace.yaml /app/
COPY ingestion /app/ingestion
COPY orchestration /app/orchestration
COPY transformation /app/transformation
COPY deploy /app/deploy
RUN /opt/venv/bin/pip install --no-deps -e /app \
 && cd /app && /opt/venv/bin/dbt parse --quiet --project-dir transformation --profiles-dir transformation

FROM python:3.11.7-slim-bookworm
RUN useradd --create-home --uid 10001 printfarm \
 && mkdir -p /data /dagster_home && chown printfarm:printfarm /data /dagster_home
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=printfarm:printfarm /app /app
COPY --chown=printfarm:printfarm deploy/dagster.yaml /dagster_home/dagster.yaml
ENV PATH=/opt/venv/bin:$PATH DATA_DIR=/data DAGSTER_HOME=/dagster_home PYTHONUNBUFFERED=1 \
    SYNC_API_HOST=0.0.0.0 DBT_DOCS_HOST=0.0.0.0
WORKDIR /app
USER printfarm
CMD ["printfarm-sync-api"]
