"""docker-compose.yml and the Dockerfile, checked without a Docker engine: Debian's docker-compose
validates the file; the structure (services, commands, healthchecks, ports, volumes) is checked
against the package."""

import importlib.util
import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SERVICES = {"logger", "dagster-webserver", "dagster-daemon", "dbt-docs", "sync-api"}


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_docker_compose_validates_the_file(tmp_path):
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: apt-get install docker-compose (.ci/run installs it)"
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    (tmp_path / "ingestion").mkdir()
    shutil.copy(REPO / "ingestion" / "config.json.example", tmp_path / "ingestion" / "config.json")
    proc = subprocess.run([binary, "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


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
            assert program in ("dagster-webserver", "dagster-daemon"), f"{name}: unknown program {program}"
            assert shutil.which(program) or (Path(__import__("sys").executable).parent / program).exists()
        healthcheck = services[name]["healthcheck"]["test"]
        if healthcheck[1] == "python" and healthcheck[2] == "-m":
            assert importlib.util.find_spec(healthcheck[3]), f"{name}: healthcheck module missing"


def test_only_the_ui_ports_are_published_and_data_is_shared():
    services = compose()["services"]
    published = sorted(p.split(":")[0] for s in services.values() for p in s.get("ports", []))
    assert published == ["3000", "8080", "8088"]
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
