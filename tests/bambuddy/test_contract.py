"""The Bambuddy stand-in against the recording of the real server, and the client against the
real server's OpenAPI. Contract files: tests/contracts/bambuddy/transcripts/*.json,
tests/contracts/bambuddy/openapi.json, tests/contracts/bambuddy/CONTRACT.md."""

import json
from pathlib import Path

import requests

from tests.contract_shape import same_shape
from tests.fakes.bambuddy import FakeBambuddy

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "bambuddy"
TRANSCRIPTS = sorted((CONTRACT / "transcripts").glob("*.json"))
# Routes the stand-in does not serve (notification providers; the product only receives the webhook).
OUT_OF_SCOPE = {
    "70_create_webhook_provider.json": "webhook providers are configured in Bambuddy's UI",
    "71_test_webhook_provider.json": "webhook providers are configured in Bambuddy's UI",
}


def load(name: str) -> dict:
    return json.loads((CONTRACT / "transcripts" / name).read_text())


def seeded_fake() -> FakeBambuddy:
    """The recording's server state: archives 1-5 (4 soft-deleted), print log 1-5, printer 1; auth off
    and no API keys (the replay turns auth on and creates the keys, transcripts 31-33)."""
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
    return fake


def archive_fields(body: dict) -> dict:
    fields = dict(body)
    return {"archive_id": fields.pop("id"), **fields}


def openapi_properties(name: str) -> set[str]:
    spec = json.loads((CONTRACT / "openapi.json").read_text())
    return set(spec["components"]["schemas"][name]["properties"])


class Credentials:
    """The recording redacts secrets but keeps their start ("bb_ssurQBRY1...(redacted)", "Bearer eyJhb...
    (redacted)"). Keys are mapped through the key_prefix the real server answered in transcripts 32/33 to
    the keys the stand-in answered there; a JWT ("eyJ") is the admin's login (CONTRACT.md "Auth": POST
    /api/v1/auth/login with the admin of transcript 31; the login itself was not recorded, its answer is
    checked against openapi.json LoginResponse/UserResponse)."""

    def __init__(self, fake: FakeBambuddy, session: requests.Session):
        self.fake, self.session = fake, session
        self.admin: dict | None = None  # the request body of transcript 31
        self.keys: dict[str, str] = {}  # recorded key_prefix without "..." -> key served by the stand-in
        self.jwt: str | None = None

    def resolve(self, value: str) -> str:
        bearer = value.startswith("Bearer ")
        shown = value.removeprefix("Bearer ").split("...")[0]
        if shown.startswith("eyJ"):
            secret = self.jwt or self.log_in()
        else:
            matches = [key for prefix, key in self.keys.items() if prefix.startswith(shown) or shown.startswith(prefix)]
            assert len(matches) <= 1, value
            secret = matches[0] if matches else "bb_notavalidkey000"  # 44, 45: keys the server never issued
        return f"Bearer {secret}" if bearer else secret

    def log_in(self) -> str:
        assert self.admin, "a JWT is used before auth was set up (transcript 31)"
        served = self.session.post(f"{self.fake.base_url}/auth/login", timeout=5,
                                   json={"username": self.admin["admin_username"],
                                         "password": self.admin["admin_password"]})
        assert served.status_code == 200, served.text
        body = served.json()
        assert set(body) == openapi_properties("LoginResponse"), "login: keys differ from openapi.json"
        assert set(body["user"]) == openapi_properties("UserResponse"), "login user: keys differ from openapi.json"
        assert body["token_type"] == "bearer" and body["user"]["username"] == self.admin["admin_username"]
        self.jwt = body["access_token"]
        return self.jwt

    def created(self, name: str, recorded: dict, served: dict) -> None:
        """Transcripts 32/33: the key carries the recorded permissions; it is what later transcripts use."""
        volatile = {"key", "key_prefix", "created_at"}
        assert {k: v for k, v in served.items() if k not in volatile} == \
               {k: v for k, v in recorded.items() if k not in volatile}, f"{name}: key row differs"
        assert served["key"].startswith("bb_") and served["key_prefix"] == served["key"][:8] + "...", name
        assert len(served["key_prefix"]) == len(recorded["key_prefix"]), name
        self.keys[recorded["key_prefix"].removesuffix("...")] = served["key"]


def test_replay_every_transcript():
    """Every transcript in order, through the same admin flow as the recording: auth off (01-30), auth set
    up (31), keys created by the admin (32/33) and used from 40 on, API keys refused on admin routes (63)."""
    fake = seeded_fake()
    session = requests.Session()
    credentials = Credentials(fake, session)
    stream_token = None
    try:
        for path in TRANSCRIPTS:
            if path.name in OUT_OF_SCOPE:
                print(f"skipped {path.name}: {OUT_OF_SCOPE[path.name]}")
                continue
            recorded = json.loads(path.read_text())
            req, resp = recorded["request"], recorded["response"]
            headers = {}
            for name, value in (req.get("headers") or {}).items():
                if name.lower() == "content-type":
                    continue
                headers[name] = credentials.resolve(value) if "redacted" in value else value
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
            if url_path.startswith("/api/v1/auth/"):
                assert served_body == recorded_body, path.name  # 30, 31, 40: auth off, set up, on
                if url_path == "/api/v1/auth/setup":
                    credentials.admin = body
            if req["method"] == "POST" and url_path == "/api/v1/api-keys/":
                credentials.created(path.name, recorded_body, served_body)
            if "stream-token" in url_path and served.status_code == 200:
                stream_token = served_body["token"]
            if req["method"] == "GET" and url_path.startswith("/api/v1/archives/?") and served.ok:
                assert [a["id"] for a in served_body] == [a["id"] for a in recorded_body], f"{path.name}: order"
        assert set(credentials.keys) == {"bb_ssurQ", "bb_ZINZC"}  # the keys of 32/33 were the ones used
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
