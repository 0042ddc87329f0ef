"""The Bambuddy stand-in against the recording of the real server, and the client against the
real server's OpenAPI. Contract files: ../shared/contracts/bambuddy/transcripts/*.json,
../shared/contracts/bambuddy/openapi.json, ../shared/contracts/bambuddy/CONTRACT.md."""

import json
from pathlib import Path

import requests

from tests.contract_shape import same_shape
from tests.fakes.bambuddy import FakeBambuddy

CONTRACT = Path(__file__).resolve().parents[2].parent / "shared" / "contracts" / "bambuddy"
TRANSCRIPTS = sorted((CONTRACT / "transcripts").glob("*.json"))
# Routes this product never calls (admin set-up of auth, API keys and notification providers).
OUT_OF_SCOPE = {
    "30_auth_status_before.json": "auth status before set-up: admin flow, not used by the sync",
    "31_auth_setup_enable.json": "enabling auth is an admin action",
    "32_create_api_key_readonly.json": "API keys are created by an admin in the UI",
    "33_create_api_key_archives_writer.json": "API keys are created by an admin in the UI",
    "63_api_keys_list_with_key_403.json": "API-key administration is not used by the sync",
    "70_create_webhook_provider.json": "webhook providers are configured in Bambuddy's UI",
    "71_test_webhook_provider.json": "webhook providers are configured in Bambuddy's UI",
}


def load(name: str) -> dict:
    return json.loads((CONTRACT / "transcripts" / name).read_text())


def seeded_fake() -> tuple[FakeBambuddy, dict[str, str]]:
    """The recording's server state: archives 1-5 (4 soft-deleted), print log 1-5, printer 1."""
    fake = FakeBambuddy().start()
    fake.add_printer("Seed P1S", "01P00A000000001", "P1S", printer_id=1)
    for archive in load("03_list_archives_default.json")["response"]["body"]:
        fake.add_archive(**archive_fields(archive))
    fake.add_archive(**archive_fields(load("24_patch_soft_deleted_4.json")["response"]["body"]))
    fake.archives[4]["external_url"] = None
    fake.soft_delete(4)
    for entry in load("10_print_log_limit2_offset0.json")["response"]["body"]["items"] + \
            load("12_print_log_status_failed.json")["response"]["body"]["items"] + \
            load("13_archive_runs_1.json")["response"]["body"]["items"]:
        fake.runs[entry["id"]] = dict(entry)
    keys = {"readonly": fake.create_api_key(can_manage_archives=False), "writer": fake.create_api_key()}
    return fake, keys


def archive_fields(body: dict) -> dict:
    fields = dict(body)
    return {"archive_id": fields.pop("id"), **fields}


def test_replay_every_transcript():
    fake, keys = seeded_fake()
    session = requests.Session()
    stream_token = None
    try:
        for path in TRANSCRIPTS:
            if path.name in OUT_OF_SCOPE:
                print(f"skipped {path.name}: {OUT_OF_SCOPE[path.name]}")
                continue
            number = int(path.name.split("_")[0])
            if number >= 41 and not fake.auth_enabled:
                fake.enable_auth()  # transcripts 41+ were recorded after auth was turned on
            recorded = json.loads(path.read_text())
            req, resp = recorded["request"], recorded["response"]
            headers = {}
            for name, value in (req.get("headers") or {}).items():
                if name.lower() == "content-type":
                    continue
                if "redacted" in value:
                    kind = "readonly" if "ssurQ" in value else "writer" if "ZINZC" in value or "bb_ZI" in value else None
                    secret = keys[kind] if kind else "bb_notavalidkey000"
                    value = f"Bearer {secret}" if value.startswith("Bearer") else secret
                headers[name] = value
            url_path = req["path"]
            if "token=" in url_path and "token=nope" not in url_path:
                url_path = url_path.split("token=")[0] + f"token={stream_token}"
            body = req.get("body")
            served = session.request(req["method"], fake.root_url + url_path, headers=headers,
                                     json=body if body is not None else None)
            assert served.status_code == resp["status"], f"{path.name}: {served.status_code} != {resp['status']}"
            recorded_body = resp.get("body")
            if isinstance(recorded_body, dict) and recorded_body.get("_binary"):
                assert served.headers["content-type"] == resp["headers"]["content-type"], path.name
                assert served.content.startswith(b"\x89PNG"), path.name
                continue
            served_body = served.json()
            if resp["status"] >= 400 and isinstance(recorded_body.get("detail"), str):
                assert served_body == recorded_body, path.name  # exact error bodies
                for header in ("www-authenticate", "allow"):
                    if header in resp["headers"]:
                        assert served.headers.get(header) == resp["headers"][header], f"{path.name}: {header}"
            elif resp["status"] == 422:
                assert [(d["type"], d["loc"]) for d in served_body["detail"]] == \
                       [(d["type"], d["loc"]) for d in recorded_body["detail"]], path.name
            else:
                same_shape(recorded_body, served_body, path.name)
            if "stream-token" in url_path and served.status_code == 200:
                stream_token = served_body["token"]
            if req["method"] == "GET" and url_path.startswith("/api/v1/archives/?") and served.ok:
                assert [a["id"] for a in served_body] == [a["id"] for a in recorded_body], f"{path.name}: order"
    finally:
        fake.stop()


def test_client_paths_exist_in_openapi():
    """Every path and method the client calls is one the real server declares."""
    spec = json.loads((CONTRACT / "openapi.json").read_text())
    used = [("get", "/api/v1/archives/"), ("get", "/api/v1/archives/{archive_id}"),
            ("patch", "/api/v1/archives/{archive_id}"), ("get", "/api/v1/archives/{archive_id}/runs"),
            ("get", "/api/v1/archives/{archive_id}/thumbnail"), ("get", "/api/v1/print-log/"),
            ("get", "/api/v1/printers/"), ("post", "/api/v1/printers/camera/stream-token")]
    source = (Path(__file__).resolve().parents[2] / "orchestration" / "bambuddy" / "client.py").read_text()
    for method, path in used:
        assert method in spec["paths"].get(path, {}), f"{method.upper()} {path} not in openapi.json"
        client_path = path.removeprefix("/api/v1").replace("{archive_id}", "{int(archive_id)}")
        assert client_path in source, f"the client no longer calls {client_path}: update this list"
