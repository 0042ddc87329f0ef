"""docker-compose.yml and the Dockerfile, checked without a Docker engine: Debian's docker-compose
validates the file; the structure (services, commands, healthchecks, ports, volumes) is checked
against the package."""

import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SERVICES = {"logger", "dagster-code", "dagster-webserver", "dagster-daemon", "dbt-docs", "sync-api"}
DEMO_SERVICES = {"demo-certs", "mosquitto", "simulator", "inventree-server", "bambuddy", "demo-init"}


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def docker_compose(tmp_path: Path, *args: str, env_lines: str = "") -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: apt-get install docker-compose (.ci/run installs it)"
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text() + env_lines)
    (tmp_path / "ingestion").mkdir(exist_ok=True)
    shutil.copy(REPO / "ingestion" / "config.json.example", tmp_path / "ingestion" / "config.json")
    return subprocess.run([binary, "-f", str(tmp_path / "docker-compose.yml"), *args], cwd=tmp_path,
                          capture_output=True, text=True)


def test_with_env_from_the_example_every_service_uses_its_volumes_ports_and_healthchecks(tmp_path):
    # .env as the README makes it (example + the "Without Docker" DAGSTER_HOME line): host paths
    # in it must not reach the containers, whose data lives in the volumes
    proc = docker_compose(tmp_path, "config", env_lines=f"DAGSTER_HOME={tmp_path}/.dagster_home\n")
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)["services"]
    assert SERVICES <= set(resolved)
    for name in SERVICES:
        service = resolved[name]
        env = service["environment"]
        assert (env["DATA_DIR"], env["DAGSTER_HOME"]) == ("/data", "/dagster_home"), name
        targets = {v["target"] if isinstance(v, dict) else v.split(":")[1]: v for v in service["volumes"]}
        assert "/data" in targets, name
        if name.startswith("dagster") or name == "sync-api":  # the API reads the daemon's heartbeat
            assert "/dagster_home" in targets, name
    # the README's ports, each answered by the service's own healthcheck
    for name, port in (("dagster-webserver", "3000"), ("dbt-docs", "8080"), ("sync-api", "8088")):
        service = resolved[name]
        assert [str(p.get("published", p) if isinstance(p, dict) else p).split(":")[0] for p in service["ports"]] == [port]
        assert port in service["command"] and f"127.0.0.1:{port}" in " ".join(service["healthcheck"]["test"]), name
    assert resolved["dagster-daemon"]["healthcheck"]["test"][-2:] == ["dagster-daemon", "liveness-check"]
    assert resolved["logger"]["healthcheck"]["test"][-2:] == ["-m", "ingestion.healthcheck"]


def test_webserver_and_daemon_reach_the_code_server_it_serves(tmp_path):
    """The code location runs in dagster-code (restarted by compose when it dies); the webserver
    and the daemon load deploy/workspace.grpc.yaml, whose host and port come from the environment."""
    proc = docker_compose(tmp_path, "config")
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)["services"]
    code = resolved["dagster-code"]
    command = code["command"]
    assert command[0] == "printfarm-code-server"  # `dagster api grpc` with warm run workers
    port = command[command.index("-p") + 1]
    assert command[command.index("-h") + 1] == "0.0.0.0"  # reachable from the other containers
    assert command[command.index("-m") + 1] == "orchestration.definitions"
    assert f"('127.0.0.1', {port})" in code["healthcheck"]["test"][-1]
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.grpc.yaml").read_text())["load_from"][0]["grpc_server"]
    assert workspace == {"host": {"env": "DAGSTER_CODE_SERVER_HOST"}, "port": {"env": "DAGSTER_CODE_SERVER_PORT"},
                         "location_name": command[command.index("--location-name") + 1]}
    for name in ("dagster-webserver", "dagster-daemon"):
        service = resolved[name]
        assert service["command"][-2:] == ["-w", "deploy/workspace.grpc.yaml"], name
        assert service["environment"]["DAGSTER_CODE_SERVER_HOST"] == "dagster-code", name
        assert str(service["environment"]["DAGSTER_CODE_SERVER_PORT"]) == port, name
        assert service["depends_on"]["dagster-code"]["condition"] == "service_healthy", name
    # the runs start inside dagster-code: it has the data, the instance and the settings
    assert {"/data", "/dagster_home"} <= {v["target"] if isinstance(v, dict) else v.split(":")[1]
                                          for v in code["volumes"]}
    assert code["restart"] == "unless-stopped" and "INVENTREE_BASE_URL" in code["environment"]


def test_docker_compose_validates_the_demo_profile(tmp_path):
    # profiles and `condition: service_completed_successfully` need docker-compose >= 1.29
    proc = docker_compose(tmp_path, "--profile", "demo", "config")
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)["services"]
    assert SERVICES | DEMO_SERVICES == set(resolved)
    assert resolved["mosquitto"]["depends_on"]["demo-certs"]["condition"] == "service_completed_successfully"


def test_services_commands_exist_in_the_package():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    services = compose()["services"]
    assert SERVICES <= set(services)
    for name in SERVICES:
        command = services[name]["command"]
        program = command[0]
        if program in scripts:
            module = scripts[program].split(":")[0]
            assert importlib.util.find_spec(module), f"{name}: {module} not importable"
        else:
            assert program in ("dagster", "dagster-webserver", "dagster-daemon"), f"{name}: unknown program {program}"
            assert shutil.which(program) or (Path(__import__("sys").executable).parent / program).exists()
        healthcheck = services[name]["healthcheck"]["test"]
        if healthcheck[1] == "python" and healthcheck[2] == "-m":
            assert importlib.util.find_spec(healthcheck[3]), f"{name}: healthcheck module missing"


def test_only_the_ui_ports_are_published_and_data_is_shared():
    services = compose()["services"]
    published = sorted(p.split(":")[0] for name in SERVICES for p in services[name].get("ports", []))
    assert published == ["3000", "8080", "8088"]
    # the demo adds the InvenTree and Bambuddy UIs only (the broker stays inside the network)
    demo = sorted(p.split(":")[0] for name in DEMO_SERVICES for p in services[name].get("ports", []))
    assert demo == ["8000", "8001"]
    for name in SERVICES:
        volumes = services[name]["volumes"]
        assert "data:/data" in volumes, f"{name} must share DATA_DIR"
        assert services[name]["restart"] == "unless-stopped"
    assert any(v.startswith("dagster_home:/dagster_home") for v in services["dagster-daemon"]["volumes"])


def test_dockerfile_is_pinned_non_root_without_secrets_and_parses_dbt():
    text = (REPO / "Dockerfile").read_text()
    bases = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert bases and all(":" in b and not b.endswith(":latest") for b in bases)
    assert "\nUSER printfarm" in text
    assert "dbt parse" in text
    for secret in ("INVENTREE_TOKEN", "BAMBUDDY_API_KEY", "SERVICE_API_TOKEN", "WEBHOOK_SHARED_SECRET"):
        assert secret not in text


def test_demo_services_only_run_with_the_profile_and_their_commands_exist():
    services = compose()["services"]
    for name in SERVICES:
        assert "profiles" not in services[name], f"{name} must run without a profile"
    for name in DEMO_SERVICES:
        assert services[name]["profiles"] == ["demo"], f"{name} must be in the demo profile only"
        image = services[name]["image"]
        if image != "printfarm-pipeline:latest":  # external images pinned to a version tag
            assert ":" in image and not image.endswith((":latest", ":stable")), f"{name}: pin {image}"

    for name in ("demo-certs", "demo-init"):
        command = services[name]["command"]
        assert command[:3] == ["python", "-m", "deploy.demo_init"] and command[3] in ("certs", "setup")
        assert importlib.util.find_spec("deploy.demo_init"), f"{name}: deploy.demo_init not importable"

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    simulator = services["simulator"]["command"]
    assert simulator[0] in scripts
    known = set(re.findall(r'add_argument\("(--[a-z-]+)"', (REPO / "ingestion" / "simulator.py").read_text()))
    flags = {arg for arg in simulator if arg.startswith("--")}
    assert flags <= known, f"simulator: unknown arguments {sorted(flags - known)}"
    assert simulator[simulator.index("--host") + 1] == "mosquitto"

    # files the demo services mount exist, and the logger's demo printers match the simulator's fleet
    mounted = [v.split(":")[0] for name in DEMO_SERVICES for v in services[name].get("volumes", [])
               if v.startswith("./")]
    assert mounted == ["./deploy/demo/mosquitto.conf"]
    for path in mounted:
        assert (REPO / path).exists(), f"mounted file {path} is missing"
    from ingestion.simulator import default_fleet
    printers = json.loads((REPO / "deploy" / "demo" / "config.json").read_text())["printers"]
    assert [p["serial"] for p in printers] == [serial for serial, _ in default_fleet(3)]
    assert {p["host"] for p in printers} == {"mosquitto"}
