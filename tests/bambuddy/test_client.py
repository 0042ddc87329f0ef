"""BambuddyClient over real HTTP against the stand-in. Contract: tests/contracts/bambuddy/
CONTRACT.md (paging, auth, thumbnails, PATCH) and transcripts 01-03, 25, 41-57."""

import socket

import pytest

from orchestration.bambuddy import (
    ArchiveNotFound,
    BambuddyAuthError,
    BambuddyClient,
    BambuddyPermissionError,
    BambuddyRequestError,
    BambuddyServerError,
    BambuddyUnreachable,
)
from orchestration.bambuddy.client import PageStats, normalise_base_url


@pytest.mark.parametrize("count, pages", [(0, 1), (1, 1), (3, 2), (4, 2)])
def test_paging_stops_on_a_short_page(bambuddy, client, count, pages):
    for i in range(count):
        bambuddy.add_archive(print_name=f"Part {i}")
    stats = PageStats()
    archives = list(client.iter_archives(stats=stats))
    assert len(archives) == count and stats.pages == pages
    created = [a["created_at"] for a in archives]
    assert created == sorted(created, reverse=True)  # newest first, as the real server orders


@pytest.mark.parametrize("given", ["http://h:1", "http://h:1/", "http://h:1/api", "http://h:1/api/v1/"])
def test_base_url_is_normalised(given):
    assert normalise_base_url(given) == "http://h:1/api/v1"


def test_auth_errors_name_the_setting_and_hide_the_key(bambuddy):
    bambuddy.enable_auth()
    readonly = bambuddy.create_api_key(can_manage_archives=False)
    archive = bambuddy.add_archive()
    wrong = BambuddyClient(bambuddy.base_url, api_key="bb_wrong-secret-key", retries=0)
    with pytest.raises(BambuddyAuthError) as exc:
        wrong.list_archives(limit=5)
    assert "BAMBUDDY_API_KEY" in str(exc.value) and "bb_wrong-secret-key" not in str(exc.value)
    reader = BambuddyClient(bambuddy.base_url, api_key=readonly, retries=0)
    assert reader.get_archive(archive["id"])["id"] == archive["id"]
    with pytest.raises(BambuddyPermissionError) as exc:
        reader.set_external_url(archive["id"], "http://inventree/web/part/1/")
    assert "can_manage_archives" in str(exc.value) and readonly not in str(exc.value)
    with pytest.raises(BambuddyPermissionError):
        reader.check(write=True)
    reader.check(write=False)


def test_missing_archive_and_unreachable_host(client):
    with pytest.raises(ArchiveNotFound):
        client.get_archive(999)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = BambuddyClient(f"http://127.0.0.1:{port}", timeout=1, retries=0)
    with pytest.raises(BambuddyUnreachable, match="BAMBUDDY_BASE_URL"):
        dead.list_printers()


def test_thumbnail_with_and_without_auth(bambuddy, client):
    archive = bambuddy.add_archive()
    assert client.download_thumbnail(archive["id"]).startswith(b"\x89PNG")
    bambuddy.enable_auth()
    key = bambuddy.create_api_key(can_manage_archives=False)
    keyed = BambuddyClient(bambuddy.base_url, api_key=key, retries=0)
    assert keyed.download_thumbnail(archive["id"]).startswith(b"\x89PNG")
    assert keyed.download_thumbnail(archive["id"]).startswith(b"\x89PNG")
    assert bambuddy.count("POST", "/api/v1/printers/camera/stream-token") == 1  # token reused
    bambuddy.stream_tokens.clear()  # expired
    assert keyed.download_thumbnail(archive["id"]).startswith(b"\x89PNG")
    assert bambuddy.count("POST", "/api/v1/printers/camera/stream-token") == 2


def test_external_url_write_read_clear_and_length(bambuddy, client):
    archive = bambuddy.add_archive(external_url="https://makerworld.com/models/1")
    assert client.get_archive(archive["id"])["external_url"] == "https://makerworld.com/models/1"
    assert client.set_external_url(archive["id"], "http://inv/web/part/3/")["external_url"] == "http://inv/web/part/3/"
    assert client.set_external_url(archive["id"], None)["external_url"] is None
    with pytest.raises(BambuddyRequestError, match="500"):
        client.set_external_url(archive["id"], "http://x/" + "a" * 500)
    assert bambuddy.archives[archive["id"]]["external_url"] is None


def test_5xx_is_retried_4xx_is_not(bambuddy, client):
    bambuddy.add_archive()
    bambuddy.inject(status=503, times=2, path_prefix="/api/v1/archives/")
    assert len(client.list_archives(limit=3)) == 1
    assert bambuddy.count("GET", "/api/v1/archives/") == 3
    bambuddy.inject(status=500, times=5, path_prefix="/api/v1/print-log/")
    with pytest.raises(BambuddyServerError):
        client.list_print_runs(limit=1)
    before = bambuddy.count("GET", "/api/v1/archives/")
    bambuddy.inject(status=400, times=1, path_prefix="/api/v1/archives/")
    with pytest.raises(BambuddyRequestError):
        client.list_archives(limit=3)
    assert bambuddy.count("GET", "/api/v1/archives/") == before + 1
