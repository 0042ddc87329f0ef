"""deploy/demo_init.py against the InvenTree and Bambuddy stand-ins over real HTTP: everything is
created once however often it runs, the env file carries working values, and a bad setting gives
an error naming it. The broker files are checked with a real mosquitto when one is installed."""

import json
import os
import pwd
import ssl
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
import requests

from deploy import demo_init
from deploy.demo_init import DemoInitError, DemoSettings
from ingestion.devbroker import find_mosquitto, free_port
from ingestion.simulator import default_fleet
from orchestration.processes import spawn
from tests.contract_shape import same_shape
from tests.fakes.bambuddy import FakeBambuddy
from tests.fakes.inventree import FakeInvenTree

BAMBUDDY_ADMIN = ("admin", "Demo-Admin-Pass-1!")
TRANSCRIPTS = demo_init.Path(__file__).resolve().parents[1] / "contracts" / "bambuddy" / "transcripts"


@pytest.fixture
def empty_inventree():
    with FakeInvenTree(username="admin", password="inventree-demo") as fake:
        yield fake


@pytest.fixture
def empty_bambuddy():
    with FakeBambuddy() as fake:
        yield fake


def settings(tmp_path, inventree, bambuddy, **overrides) -> DemoSettings:
    env = {"INVENTREE_BASE_URL": inventree.base_url, "INVENTREE_WEB_URL": "http://localhost:8000",
           "INVENTREE_ADMIN_USER": inventree.username, "INVENTREE_ADMIN_PASSWORD": inventree.password,
           "BAMBUDDY_BASE_URL": bambuddy.base_url, "BAMBUDDY_ADMIN_USER": BAMBUDDY_ADMIN[0],
           "BAMBUDDY_ADMIN_PASSWORD": BAMBUDDY_ADMIN[1], "DEMO_PRINTER_HOST": "mosquitto",
           "DEMO_ENV_FILE": str(tmp_path / "data" / "demo.env"), "DEMO_WAIT_SECONDS": "5", **overrides}
    return DemoSettings.from_env(env)


def env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_the_bambuddy_admin_routes_answer_like_the_recording(empty_bambuddy):
    """The stand-in's routes demo_init uses, replayed from the recorded transcripts 30-33 and 63."""
    fake, session = empty_bambuddy, requests.Session()

    def replay(name: str, headers: dict[str, str] | None = None) -> dict:
        recorded = json.loads((TRANSCRIPTS / name).read_text())
        req, resp = recorded["request"], recorded["response"]
        served = session.request(req["method"], fake.root_url + req["path"], json=req["body"], headers=headers)
        assert served.status_code == resp["status"], name
        same_shape(resp["body"], served.json(), name)
        return served.json()

    assert replay("30_auth_status_before.json") == {"auth_enabled": False, "requires_setup": True}
    replay("31_auth_setup_enable.json")
    setup = json.loads((TRANSCRIPTS / "31_auth_setup_enable.json").read_text())["request"]["body"]
    login = session.post(f"{fake.base_url}/auth/login", timeout=5,
                         json={"username": setup["admin_username"], "password": setup["admin_password"]})
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    readonly = replay("32_create_api_key_readonly.json", admin)
    writer = replay("33_create_api_key_archives_writer.json", admin)
    assert (readonly["can_manage_archives"], writer["can_manage_archives"]) == (False, True)
    assert writer["key_prefix"] == writer["key"][:8] + "..."
    assert replay("63_api_keys_list_with_key_403.json", {"X-API-Key": writer["key"]}) == \
        {"detail": "API keys cannot be used for administrative operations"}


def test_running_twice_creates_everything_once(tmp_path, capsys, empty_inventree, empty_bambuddy):
    inventree, bambuddy = empty_inventree, empty_bambuddy
    config = settings(tmp_path, inventree, bambuddy)
    first = demo_init.setup(config)
    first_out = capsys.readouterr().out
    second = demo_init.setup(config)
    second_out = capsys.readouterr().out

    assert first == second
    assert [c["name"] for c in inventree.categories.values()] == ["3D prints"]
    assert [loc["name"] for loc in inventree.locations.values()] == ["Print farm"]
    assert sorted((t["name"], t["units"]) for t in inventree.templates.values()) == [("PrintTime", "s"),
                                                                                     ("Weight", "g")]
    assert bambuddy.auth_enabled
    assert sorted(p["serial_number"] for p in bambuddy.printers.values()) == sorted(s for s, _ in default_fleet(3))
    assert {p["ip_address"] for p in bambuddy.printers.values()} == {"mosquitto"}
    assert [k["name"] for k in bambuddy.api_key_rows.values()] == ["printfarm-pipeline"]
    assert "created" in first_out and "created" not in second_out and "exists" in second_out

    # the file and stdout carry the same settings, with the ids and secrets that work
    env_file = config.env_file
    assert env_lines(env_file.read_text()) == env_lines(second_out) == first
    assert env_file.stat().st_mode & 0o077 == 0
    assert first == {"INVENTREE_BASE_URL": inventree.base_url, "INVENTREE_WEB_URL": "http://localhost:8000",
                     "INVENTREE_TOKEN": inventree.token,
                     "INVENTREE_PART_CATEGORY_ID": str(next(iter(inventree.categories))),
                     "INVENTREE_STOCK_LOCATION_ID": str(next(iter(inventree.locations))),
                     "BAMBUDDY_BASE_URL": bambuddy.base_url, "BAMBUDDY_API_KEY": first["BAMBUDDY_API_KEY"]}
    key = {"X-API-Key": first["BAMBUDDY_API_KEY"]}
    archive = bambuddy.add_archive(print_name="Benchy")
    assert requests.get(f"{bambuddy.base_url}/archives/", headers=key, timeout=5).status_code == 200
    patched = requests.patch(f"{bambuddy.base_url}/archives/{archive['id']}", json={"external_url": "x"},
                             headers=key, timeout=5)
    assert patched.status_code == 200
    # least privilege: nothing beyond reading and managing archives
    row = next(iter(bambuddy.api_key_rows.values()))
    assert [s for s, on in row.items() if s.startswith("can_") and on] == ["can_read_status", "can_manage_archives"]


def test_what_exists_is_reused_and_auth_stays_off_without_a_password(tmp_path, inventree, bambuddy):
    """The conftest stand-ins come seeded (category, location, templates; one printer)."""
    before = (dict(inventree.categories), dict(inventree.locations), dict(inventree.templates))
    values = demo_init.setup(settings(tmp_path, inventree, bambuddy, BAMBUDDY_ADMIN_PASSWORD=""))
    assert (inventree.categories, inventree.locations, inventree.templates) == before
    assert values["INVENTREE_PART_CATEGORY_ID"] == str(inventree.ids["INVENTREE_PART_CATEGORY_ID"])
    assert values["INVENTREE_STOCK_LOCATION_ID"] == str(inventree.ids["INVENTREE_STOCK_LOCATION_ID"])
    assert not bambuddy.auth_enabled
    assert len(bambuddy.printers) == 1 + 3
    assert bambuddy.api_keys[values["BAMBUDDY_API_KEY"]]["can_manage_archives"]


def test_a_lost_env_file_replaces_the_key_instead_of_adding_one(tmp_path, capsys, empty_inventree, empty_bambuddy):
    config = settings(tmp_path, empty_inventree, empty_bambuddy)
    old = demo_init.setup(config)["BAMBUDDY_API_KEY"]
    config.env_file.unlink()  # Bambuddy shows a key's value only once: it cannot be recovered
    new = demo_init.setup(config)["BAMBUDDY_API_KEY"]
    assert new != old
    assert [k["name"] for k in empty_bambuddy.api_key_rows.values()] == ["printfarm-pipeline"]
    assert old not in empty_bambuddy.api_keys and new in empty_bambuddy.api_keys


def test_wrong_inventree_admin_password_names_the_setting(tmp_path, monkeypatch, capsys, empty_inventree,
                                                          empty_bambuddy):
    config = settings(tmp_path, empty_inventree, empty_bambuddy)
    for name, value in {"INVENTREE_BASE_URL": config.inventree_url, "INVENTREE_ADMIN_USER": "admin",
                        "INVENTREE_ADMIN_PASSWORD": "wrong", "BAMBUDDY_BASE_URL": config.bambuddy_url,
                        "DEMO_ENV_FILE": str(config.env_file), "DEMO_WAIT_SECONDS": "5"}.items():
        monkeypatch.setenv(name, value)
    assert demo_init.main(["setup"]) == 2
    err = capsys.readouterr().err
    assert "INVENTREE_ADMIN_PASSWORD" in err and "wrong" not in err
    assert not config.env_file.exists() and not empty_inventree.categories


def test_wrong_bambuddy_admin_password_names_the_setting(tmp_path, empty_inventree, empty_bambuddy):
    empty_bambuddy.admin, empty_bambuddy.auth_enabled = ("admin", "Another-Pass-2?"), True
    with pytest.raises(DemoInitError, match="BAMBUDDY_ADMIN_PASSWORD") as error:
        demo_init.setup(settings(tmp_path, empty_inventree, empty_bambuddy))
    assert "Incorrect username or password" in str(error.value)
    with pytest.raises(DemoInitError, match="BAMBUDDY_ADMIN_PASSWORD"):
        demo_init.setup(settings(tmp_path, empty_inventree, empty_bambuddy, BAMBUDDY_ADMIN_PASSWORD=""))


def test_missing_or_unreachable_settings_are_named(tmp_path, empty_inventree, empty_bambuddy):
    with pytest.raises(DemoInitError, match="INVENTREE_ADMIN_PASSWORD is empty"):
        settings(tmp_path, empty_inventree, empty_bambuddy, INVENTREE_ADMIN_PASSWORD="")
    with pytest.raises(DemoInitError, match="DEMO_WAIT_SECONDS"):
        settings(tmp_path, empty_inventree, empty_bambuddy, DEMO_WAIT_SECONDS="soon")
    closed = f"http://127.0.0.1:{free_port()}"
    config = settings(tmp_path, empty_inventree, empty_bambuddy, INVENTREE_BASE_URL=closed, DEMO_WAIT_SECONDS="0")
    with pytest.raises(DemoInitError, match="INVENTREE_BASE_URL"):
        demo_init.setup(config)


def test_broker_files_are_made_once_and_mosquitto_accepts_them(tmp_path):
    certs = tmp_path / "certs"
    demo_init.make_broker_files(certs, "12345678")
    ca = (certs / "ca.crt").read_bytes()
    demo_init.make_broker_files(certs, "87654321")
    assert (certs / "ca.crt").read_bytes() == ca  # made once
    assert (certs / "passwd").read_text().startswith("bblp:$7$")

    mosquitto = find_mosquitto()
    assert mosquitto, "mosquitto is missing: apt-get install mosquitto (make test installs it as root)"
    port = free_port()
    conf = (demo_init.Path(__file__).resolve().parents[2] / "deploy" / "demo" / "mosquitto.conf").read_text()
    conf = conf.replace("/mosquitto/certs", str(certs)).replace("listener 8883", f"listener {port} 127.0.0.1")
    conf += f"user {pwd.getpwuid(os.getuid()).pw_name}\n"  # as root it would switch to a user who cannot read tmp
    (tmp_path / "mosquitto.conf").write_text(conf)
    broker = spawn([mosquitto, "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT)
    try:
        assert connects(port, certs / "ca.crt", "87654321"), broker_output(broker)  # the current access code
        assert not connects(port, certs / "ca.crt", "12345678")  # the replaced one
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def broker_output(broker: subprocess.Popen) -> str:
    broker.terminate()
    return broker.communicate(timeout=10)[0].decode(errors="replace")


def connects(port: int, ca_file, password: str) -> bool:
    """Like the simulator: TLS verified against the demo CA (no host name check), user bblp."""
    result: dict[str, bool] = {}
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(ca_file))
    client.tls_set_context(ctx)
    client.username_pw_set("bblp", password)

    def on_connect(client, userdata, flags, reason_code, properties):
        result["ok"] = not reason_code.is_failure
        done.set()

    client.on_connect = on_connect
    deadline = time.monotonic() + 10
    while True:  # the broker may still be starting
        try:
            client.connect("127.0.0.1", port)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    client.loop_start()
    try:
        done.wait(10)
    finally:
        client.loop_stop()
        client.disconnect()
    return result.get("ok", False)
