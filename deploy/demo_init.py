"""`python -m deploy.demo_init`: the one-shot steps of the docker-compose `demo` profile.

`certs DIR` makes the demo broker's TLS files and password file; `setup` (the default) waits for
InvenTree and Bambuddy, finds or creates what the pipeline needs there, and writes the pipeline's
settings as KEY=VALUE lines to DEMO_ENV_FILE and to stdout. Both are safe to run again: nothing is
created twice. Everything else setup prints is a `#` comment, so its output can be appended to .env.

Settings (environment; the compose file sets them for the demo):
  INVENTREE_BASE_URL, INVENTREE_WEB_URL       where the pipeline reaches InvenTree / links point to
  INVENTREE_ADMIN_USER, INVENTREE_ADMIN_PASSWORD   the admin the inventree-server service created
  BAMBUDDY_BASE_URL                           Bambuddy's API root (…/api/v1)
  BAMBUDDY_ADMIN_USER, BAMBUDDY_ADMIN_PASSWORD    turns Bambuddy's auth on with this admin; empty
                                              password: leave auth off (every route is then open)
  DEMO_PRINTER_HOST, DEMO_PRINTER_ACCESS_CODE, DEMO_PRINTERS   the simulated printers (broker)
  DEMO_ENV_FILE (/data/demo.env), DEMO_WAIT_SECONDS (600)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import requests
from inventree.api import InvenTreeAPI
from inventree.base import ParameterTemplate
from inventree.part import PartCategory
from inventree.stock import StockLocation

from ingestion.devbroker import make_certificates, password_line
from ingestion.simulator import default_fleet

CATEGORY = ("3D prints", "Finished 3D prints (printfarm pipeline)")
LOCATION = ("Print farm", "Print farm output shelf (printfarm pipeline)")
# The units the pipeline sends its values in (orchestration/inventree/client.py).
TEMPLATES = (("Weight", "g", "Print weight in grams"), ("PrintTime", "s", "Print duration in seconds"))
INVENTREE_TOKEN_NAME = "printfarm"   # asking again with the same name returns the same token
BAMBUDDY_KEY_NAME = "printfarm-pipeline"
# Least privilege: read archives/print log, write the InvenTree link into archives. Bambuddy's
# defaults turn most scopes on, so each one is sent explicitly (CONTRACT.md "Auth").
BAMBUDDY_KEY_SCOPES = {"can_queue": False, "can_control_printer": False, "can_read_status": True,
                       "can_manage_library": False, "can_manage_inventory": False,
                       "can_manage_maintenance": False, "can_manage_archives": True,
                       "can_manage_projects": False, "can_access_cloud": False, "can_update_energy_cost": False}
HTTP_TIMEOUT = 20.0


class DemoInitError(RuntimeError):
    """A setup step failed; the message names the setting or service to look at."""


@dataclass(frozen=True)
class DemoSettings:
    inventree_url: str
    inventree_web_url: str
    inventree_user: str
    inventree_password: str
    bambuddy_url: str
    bambuddy_user: str
    bambuddy_password: str
    printer_host: str
    printer_access_code: str
    printers: int
    env_file: Path
    wait_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DemoSettings":
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return (env.get(name) or default).strip()

        def number(name: str, default: str, minimum: float) -> float:
            raw = get(name, default)
            try:
                value = float(raw)
            except ValueError:
                raise DemoInitError(f"{name}: {raw!r} is not a number") from None
            if value < minimum:
                raise DemoInitError(f"{name}: must be at least {minimum:g}, got {raw}")
            return value

        password = get("INVENTREE_ADMIN_PASSWORD")
        if not password:
            raise DemoInitError("INVENTREE_ADMIN_PASSWORD is empty: set it to the password of the admin the "
                                "inventree-server service creates (same variable in docker-compose.yml)")
        code = get("DEMO_PRINTER_ACCESS_CODE", "12345678")
        if not 1 <= len(code) <= 20:  # Bambuddy's PrinterCreate limit
            raise DemoInitError("DEMO_PRINTER_ACCESS_CODE: must be 1 to 20 characters")
        inventree_url = get("INVENTREE_BASE_URL", "http://inventree-server:8000")
        return cls(
            inventree_url=inventree_url,
            inventree_web_url=get("INVENTREE_WEB_URL", inventree_url),
            inventree_user=get("INVENTREE_ADMIN_USER", "admin"),
            inventree_password=password,
            bambuddy_url=get("BAMBUDDY_BASE_URL", "http://bambuddy:8000/api/v1"),
            bambuddy_user=get("BAMBUDDY_ADMIN_USER", "admin"),
            bambuddy_password=get("BAMBUDDY_ADMIN_PASSWORD"),
            printer_host=get("DEMO_PRINTER_HOST", "mosquitto"),
            printer_access_code=code,
            printers=int(number("DEMO_PRINTERS", "3", 0)),
            env_file=Path(get("DEMO_ENV_FILE", "/data/demo.env")),
            wait_seconds=number("DEMO_WAIT_SECONDS", "600", 0),
        )


def note(message: str) -> None:
    print(f"# {message}", flush=True)


# --- broker files -----------------------------------------------------------------------------
def make_broker_files(directory: Path, access_code: str, username: str = "bblp") -> None:
    """CA + server certificate once (a new CA would break clients that pinned the old one); the
    password file every time, so a changed DEMO_PRINTER_ACCESS_CODE takes effect on restart."""
    directory.mkdir(parents=True, exist_ok=True)
    if all((directory / name).exists() for name in ("ca.crt", "server.crt", "server.key")):
        note(f"broker certificates already in {directory}")
    else:
        make_certificates(directory, common_name="mosquitto")
        note(f"broker certificates made in {directory}")
    passwd = directory / "passwd"
    passwd.write_text(password_line(username, access_code) + "\n")
    # mosquitto runs as its own user and must read these from the shared volume; they hold only
    # demo secrets (ca.key, which could mint certificates, keeps openssl's 0600).
    for name in ("ca.crt", "server.crt", "server.key", "passwd"):
        (directory / name).chmod(0o644)


# --- waiting ----------------------------------------------------------------------------------
def wait_for(url: str, service: str, setting: str, seconds: float) -> None:
    """Poll until the service answers 200: InvenTree migrates its database on first start."""
    deadline = time.monotonic() + seconds
    last = "no answer"
    while True:
        try:
            response = requests.get(url, timeout=5)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        if time.monotonic() >= deadline:
            raise DemoInitError(f"{service} did not answer at {url} within {seconds:g} s ({last}): check "
                                f"{setting} and `docker compose logs {service}`, or raise DEMO_WAIT_SECONDS")
        time.sleep(2)


# --- InvenTree --------------------------------------------------------------------------------
def _inventree_call(what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except requests.HTTPError as exc:
        # args[0] carries the request headers (the token in clear): report status and body only.
        detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        raise DemoInitError(f"InvenTree refused to {what}: HTTP {detail.get('status_code', '?')} "
                            f"{detail.get('body', '')}".rstrip()) from None
    except requests.RequestException as exc:
        raise DemoInitError(f"InvenTree: {what} failed: {type(exc).__name__} (INVENTREE_BASE_URL)") from None


def _find_or_create(api: InvenTreeAPI, model: Any, what: str, data: dict[str, Any]) -> int:
    name = data["name"]
    found = _inventree_call(f"list {what}s", lambda: model.list(api, name=name, raise_error=True))
    found = [o for o in found if o["name"] == name]
    # Prefer a top-level one when the name is also used deeper in a tree.
    found.sort(key=lambda o: ("parent" in o and o["parent"] is not None, o.pk))
    if found:
        note(f"InvenTree: {what} {name!r} exists, id {found[0].pk}")
        return int(found[0].pk)
    created = _inventree_call(f"create the {what} {name!r}", lambda: model.create(api, data))
    if created is None:
        raise DemoInitError(f"InvenTree did not create the {what} {name!r}")
    note(f"InvenTree: {what} {name!r} created, id {created.pk}")
    return int(created.pk)


def prepare_inventree(settings: DemoSettings) -> dict[str, str]:
    try:
        api = InvenTreeAPI(settings.inventree_url, username=settings.inventree_user,
                           password=settings.inventree_password, token_name=INVENTREE_TOKEN_NAME,
                           timeout=HTTP_TIMEOUT)
    except ConnectionRefusedError:
        raise DemoInitError(f"InvenTree did not answer at {settings.inventree_url} (INVENTREE_BASE_URL)") from None
    except ConnectionError:  # the library's "Authentication at InvenTree server failed"
        raise DemoInitError(f"InvenTree refused the login of INVENTREE_ADMIN_USER={settings.inventree_user!r}: "
                            "check INVENTREE_ADMIN_PASSWORD (the inventree-server service creates that admin "
                            "on its first start only; a later change needs `invoke superuser` there)") from None
    except (requests.RequestException, ValueError) as exc:
        raise DemoInitError(f"InvenTree at {settings.inventree_url} (INVENTREE_BASE_URL): {exc}") from None
    if not api.token:
        raise DemoInitError(f"InvenTree gave no API token to INVENTREE_ADMIN_USER={settings.inventree_user!r}")
    category = _find_or_create(api, PartCategory, "part category",
                               {"name": CATEGORY[0], "description": CATEGORY[1]})
    location = _find_or_create(api, StockLocation, "stock location",
                               {"name": LOCATION[0], "description": LOCATION[1]})
    for name, units, description in TEMPLATES:
        _find_or_create(api, ParameterTemplate, "parameter template",
                        {"name": name, "units": units, "description": description})
    return {"INVENTREE_BASE_URL": settings.inventree_url, "INVENTREE_WEB_URL": settings.inventree_web_url,
            "INVENTREE_TOKEN": api.token, "INVENTREE_PART_CATEGORY_ID": str(category),
            "INVENTREE_STOCK_LOCATION_ID": str(location)}


# --- Bambuddy ---------------------------------------------------------------------------------
class Bambuddy:
    """The few admin calls setup needs (contract: tests/contracts/bambuddy/)."""

    def __init__(self, base_url: str):
        root = base_url.rstrip("/").removesuffix("/api/v1")
        self.root, self.api = root, root + "/api/v1"
        self.session = requests.Session()

    def call(self, method: str, path: str, what: str, hint: str = "BAMBUDDY_BASE_URL", **kwargs: Any) -> Any:
        try:
            response = self.session.request(method, self.api + path, timeout=HTTP_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise DemoInitError(f"Bambuddy: {what} failed: {type(exc).__name__} ({hint})") from None
        if response.status_code != 200:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text[:300]
            raise DemoInitError(f"Bambuddy refused to {what}: HTTP {response.status_code} {detail} ({hint})")
        return response.json()

    def log_in(self, user: str, password: str) -> None:
        """Auth off and no password: stay anonymous (every route is open). Otherwise turn auth on
        with this admin when it is still off, and log in: API keys cannot manage API keys."""
        status = self.call("GET", "/auth/status", "report its auth status")
        if not password:
            if status.get("auth_enabled"):
                raise DemoInitError("Bambuddy has authentication on: set BAMBUDDY_ADMIN_USER and "
                                    "BAMBUDDY_ADMIN_PASSWORD to an admin's login")
            note("Bambuddy: authentication stays off (BAMBUDDY_ADMIN_PASSWORD is empty)")
            return
        hint = "BAMBUDDY_ADMIN_USER / BAMBUDDY_ADMIN_PASSWORD"
        if not status.get("auth_enabled"):
            self.call("POST", "/auth/setup", "turn authentication on", hint,
                      json={"auth_enabled": True, "admin_username": user, "admin_password": password})
            note(f"Bambuddy: authentication turned on, admin {user!r}")
        login = self.call("POST", "/auth/login", f"log in BAMBUDDY_ADMIN_USER={user!r}", hint,
                          json={"username": user, "password": password})
        self.session.headers["Authorization"] = f"Bearer {login['access_token']}"

    def add_printers(self, host: str, access_code: str, count: int) -> None:
        """The simulated printers, so Bambuddy watches them (via the broker) as it would real ones."""
        known = {p["serial_number"] for p in self.call("GET", "/printers/", "list printers")}
        for index, (serial, model) in enumerate(default_fleet(count), start=1):
            if serial in known:
                note(f"Bambuddy: printer {serial} exists")
                continue
            self.call("POST", "/printers/", f"add the printer {serial}",
                      "DEMO_PRINTER_HOST / DEMO_PRINTER_ACCESS_CODE; is the simulator service running?",
                      json={"name": f"{model} sim {index}", "serial_number": serial, "ip_address": host,
                            "model": model, "access_code": access_code, "auto_archive": True})
            note(f"Bambuddy: printer {serial} added ({host})")

    def api_key(self, previous: str) -> str:
        """Keep the key of the last run when Bambuddy still has it; its full value is shown only at
        creation, so otherwise drop our stale keys and make a new one."""
        ours = [k for k in self.call("GET", "/api-keys/", "list API keys") if k.get("name") == BAMBUDDY_KEY_NAME]
        for key in ours:
            prefix = str(key.get("key_prefix", "")).removesuffix("...")
            scoped = all(key.get(scope) == wanted for scope, wanted in BAMBUDDY_KEY_SCOPES.items()
                         if scope in ("can_read_status", "can_manage_archives"))
            if previous and prefix and previous.startswith(prefix) and key.get("enabled") and scoped:
                note(f"Bambuddy: API key {BAMBUDDY_KEY_NAME!r} exists, id {key['id']}")
                return previous
        for key in ours:
            self.call("DELETE", f"/api-keys/{key['id']}", f"delete the stale API key {key['id']}")
        created = self.call("POST", "/api-keys/", "create an API key",
                            json={"name": BAMBUDDY_KEY_NAME, **BAMBUDDY_KEY_SCOPES})
        note(f"Bambuddy: API key {BAMBUDDY_KEY_NAME!r} created, id {created['id']}")
        return str(created["key"])


def prepare_bambuddy(settings: DemoSettings, previous_key: str) -> dict[str, str]:
    bambuddy = Bambuddy(settings.bambuddy_url)
    bambuddy.log_in(settings.bambuddy_user, settings.bambuddy_password)
    if settings.printers:
        bambuddy.add_printers(settings.printer_host, settings.printer_access_code, settings.printers)
    return {"BAMBUDDY_BASE_URL": bambuddy.api, "BAMBUDDY_API_KEY": bambuddy.api_key(previous_key)}


# --- env file ---------------------------------------------------------------------------------
def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> str:
    text = ("# printfarm demo settings, written by `python -m deploy.demo_init` (docker compose demo profile)\n"
            + "".join(f"{k}={v}\n" for k, v in values.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic and private: the file holds the InvenTree token and the Bambuddy key.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return text


def setup(settings: DemoSettings) -> dict[str, str]:
    wait_for(settings.inventree_url.rstrip("/").removesuffix("/api") + "/api/", "inventree-server",
             "INVENTREE_BASE_URL", settings.wait_seconds)
    bambuddy_root = settings.bambuddy_url.rstrip("/").removesuffix("/api/v1")
    wait_for(bambuddy_root + "/health", "bambuddy", "BAMBUDDY_BASE_URL", settings.wait_seconds)
    previous = read_env_file(settings.env_file)
    values = {**prepare_inventree(settings), **prepare_bambuddy(settings, previous.get("BAMBUDDY_API_KEY", ""))}
    print(write_env_file(settings.env_file, values), end="", flush=True)
    note(f"written to {settings.env_file}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.demo_init", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step")
    sub.add_parser("setup", help="prepare InvenTree and Bambuddy, write the settings (default)")
    certs = sub.add_parser("certs", help="make the broker's certificates and password file")
    certs.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.step == "certs":
            code = os.environ.get("DEMO_PRINTER_ACCESS_CODE") or "12345678"
            make_broker_files(args.directory, code)
        else:
            setup(DemoSettings.from_env())
    except DemoInitError as exc:
        print(f"demo-init: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
