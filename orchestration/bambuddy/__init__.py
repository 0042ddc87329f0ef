"""Everything that talks to Bambuddy: client, raw-layer collector, Dagster asset and resource."""

from .assets import BambuddyCollectConfig, bambuddy_archives
from .client import (
    ArchiveNotFound,
    BambuddyAuthError,
    BambuddyClient,
    BambuddyError,
    BambuddyPermissionError,
    BambuddyRequestError,
    BambuddyServerError,
    BambuddyUnreachable,
)
from .resources import BambuddyResource

__all__ = ["ArchiveNotFound", "BambuddyAuthError", "BambuddyClient", "BambuddyCollectConfig", "BambuddyError",
           "BambuddyPermissionError", "BambuddyRequestError", "BambuddyResource", "BambuddyServerError",
           "BambuddyUnreachable", "bambuddy_archives"]
