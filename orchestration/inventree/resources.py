"""Dagster resource for InvenTree: configuration in, an InvenTreeClient out."""

from dagster import ConfigurableResource

from orchestration.settings import SyncSettings

from .client import InvenTreeClient


class InvenTreeResource(ConfigurableResource):
    """Empty fields fall back to the environment (INVENTREE_BASE_URL, INVENTREE_TOKEN, ...), so the
    token never has to sit in Dagster's resource config, where the UI would show it."""

    base_url: str = ""
    token: str = ""
    timeout: float = 0.0

    def get_client(self) -> InvenTreeClient:
        settings = SyncSettings.from_env()
        return InvenTreeClient(self.base_url or settings.inventree_base_url, self.token or settings.inventree_token,
                               timeout=self.timeout or settings.http_timeout_seconds,
                               retries=settings.http_retries, backoff=settings.http_retry_backoff_seconds)
