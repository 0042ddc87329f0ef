"""SyncSettings: names, defaults and error messages of the original sidecar's env variables."""

import pytest

from orchestration.settings import SettingsError, SyncSettings


def test_defaults_without_env():
    s = SyncSettings.from_env({})
    assert s.inventree_stock_status == 10
    assert s.part_key_fields == ("content_hash", "filename", "print_name", "name")
    assert s.part_ipn_prefix == "BMB"
    assert not s.bambuddy_enabled
    assert str(s.ledger_db).endswith("sync.sqlite3")


@pytest.mark.parametrize(
    "env, named",
    [
        ({"INVENTREE_STOCK_STATUS": "999"}, "INVENTREE_STOCK_STATUS"),
        ({"SYNC_SUCCESS_ONLY": "maybe"}, "SYNC_SUCCESS_ONLY"),
        ({"PART_KEY_FIELDS": "colour"}, "PART_KEY_FIELDS"),
        ({"INVENTREE_PART_CATEGORY_ID": "abc"}, "INVENTREE_PART_CATEGORY_ID"),
        ({"BAMBUDDY_BASE_URL": "bambuddy.local"}, "BAMBUDDY_BASE_URL"),
        ({"HTTP_TIMEOUT_SECONDS": "0"}, "HTTP_TIMEOUT_SECONDS"),
    ],
)
def test_bad_setting_is_named(env, named):
    with pytest.raises(SettingsError, match=named):
        SyncSettings.from_env(env)


def test_secrets_are_redacted():
    s = SyncSettings.from_env({"INVENTREE_TOKEN": "inv-secret", "BAMBUDDY_API_KEY": "bb_secret"})
    shown = repr(s) + str(s.redacted())
    assert "inv-secret" not in shown and "bb_secret" not in shown
    assert s.redacted()["INVENTREE_TOKEN"] == "***"


def test_link_base_strips_api_suffix():
    s = SyncSettings.from_env({"INVENTREE_BASE_URL": "http://inv:8000/api/"})
    assert s.inventree_link_base == "http://inv:8000"
