"""The InvenTree stand-in against the recording of the real server (curl transcripts, replayed in
their recorded order on one fresh server), and the client's paths against the real schema.
Contract files: tests/contracts/inventree/transcripts/curl/*.json, schema.yml, CONTRACT.md."""

import base64
import io
import json
from pathlib import Path

import requests
import yaml
from PIL import Image

from tests.contract_shape import same_shape
from tests.fakes.bambuddy import PNG_1PX
from tests.fakes.inventree import FakeInvenTree

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "inventree"
OUT_OF_SCOPE = {
    "08_options_parameter_template.json": "OPTIONS metadata: the product never asks for it",
    "09_options_part.json": "OPTIONS metadata: the product never asks for it",
    "38_options_stock.json": "OPTIONS metadata: the product never asks for it",
    "40_options_parameter.json": "OPTIONS metadata: the product never asks for it",
    "29e_token_list.json": "token administration is not used by the product",
}
def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, "JPEG")  # a real file: the server verifies images
    return buffer.getvalue()


JPEG = _jpeg()


def parse_curl(command: str) -> dict:
    """Method, URL, headers, JSON body or multipart fields of a recorded curl line."""
    method, headers, body, fields = "GET", {}, None, {}
    command, url = command.rsplit(" ", 1)  # the URL is always last
    tokens = command.split(" -")
    for tok in tokens[1:]:
        flag, _, value = tok.partition(" ")
        if flag == "X":
            method = value.split()[0]
        elif flag == "H":
            name, _, val = value.partition(":")
            headers[name.strip()] = val.strip()
        elif flag == "u":
            headers["Authorization"] = "Basic " + base64.b64encode(b"admin:inventree").decode()
        elif flag == "d":
            body = value
        elif flag == "F":
            key, _, val = value.partition("=")
            fields[key] = val
    return {"method": method, "url": url, "headers": headers, "body": body, "fields": fields}


def test_replay_curl_transcripts_in_order():
    fake = FakeInvenTree(token="inv-" + "a" * 40 + "-20261124").start()
    replayed = 0
    try:
        for path in sorted((CONTRACT / "transcripts" / "curl").glob("*.json")):
            if path.name in OUT_OF_SCOPE:
                print(f"skipped {path.name}: {OUT_OF_SCOPE[path.name]}")
                continue
            recorded = json.loads(path.read_text())
            req = parse_curl(recorded["request"]["curl"])
            headers = {k: (v.replace("<TOKEN>", fake.token)) for k, v in req["headers"].items()}
            url = fake.root_url + req["url"].split("18000", 1)[1]
            kwargs = {}
            if req["fields"]:
                files = {}
                for key, val in req["fields"].items():
                    if val.startswith("@"):
                        name = val[1:]
                        content = JPEG if name.endswith(".jpg") else PNG_1PX if "benchy" in name else b"not an image"
                        files[key] = (name, content)
                    else:
                        files[key] = (None, val)
                kwargs["files"] = files
            elif "body" in recorded["request"]:
                # newer transcripts (70+) carry the parsed body: their values hold spaces and quotes
                kwargs["json"] = recorded["request"]["body"]
            elif req["body"] is not None:
                kwargs["data"] = req["body"].encode()
            served = requests.request(req["method"], url, headers=headers, **kwargs)
            assert served.status_code == recorded["status"], f"{path.name}: {served.status_code} != {recorded['status']}: {served.text[:200]}"
            replayed += 1
            body = recorded.get("response_body")
            if served.headers.get("content-type", "").startswith("image/") or recorded["status"] == 204:
                continue
            served_body = served.json()
            if recorded["status"] >= 400 and recorded["status"] != 500:
                if "url" in body:
                    body = {**body, "url": body["url"].replace("http://127.0.0.1:18000", fake.root_url)}
                assert served_body == body, f"{path.name}: {served_body} != {body}"
                if "www-authenticate" in recorded.get("response_headers", {}):
                    assert served.headers.get("www-authenticate") == "Token", path.name
            else:
                same_shape(body, served_body, path.name)
                # pks and counts are not compared: the real server also served the client transcripts
                # in between, so its ids ran ahead of this replay.
    finally:
        fake.stop()
    assert replayed >= 80


def test_client_paths_exist_in_schema():
    schema = yaml.safe_load((CONTRACT / "schema.yml").read_text())
    used = [("get", "/api/part/"), ("post", "/api/part/"), ("get", "/api/part/{id}/"), ("patch", "/api/part/{id}/"),
            ("get", "/api/stock/"), ("post", "/api/stock/"), ("get", "/api/parameter/template/"),
            ("get", "/api/parameter/"), ("post", "/api/parameter/"), ("patch", "/api/parameter/{id}/"),
            ("get", "/api/part/category/{id}/"), ("get", "/api/stock/location/{id}/"), ("get", "/api/user/me/")]
    for method, path in used:
        assert method in schema["paths"].get(path, {}), f"{method.upper()} {path} not in schema.yml"
