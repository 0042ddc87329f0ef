"""Dagster resource for Bambuddy: configuration in, a BambuddyClient out."""

from dagster import ConfigurableResource

from orchestration.settings import SyncSettings

from .client import BambuddyClient


class BambuddyResource(ConfigurableResource):
    """Empty fields fall back to the environment (BAMBUDDY_BASE_URL, BAMBUDDY_API_KEY, ...), so the
    key never has to sit in Dagster's resource config, where the UI would show it."""

    base_url: str = ""
    api_key: str = ""
    timeout: float = 0.0
    page_size: int = 0

    def get_client(self) -> BambuddyClient:
        settings = SyncSettings.from_env()
        return BambuddyClient(self.base_url or settings.bambuddy_base_url, self.api_key or settings.bambuddy_api_key,
                              timeout=self.timeout or settings.http_timeout_seconds,
                              page_size=self.page_size or settings.backfill_page_size, retries=settings.http_retries,
                              backoff=settings.http_retry_backoff_seconds)
