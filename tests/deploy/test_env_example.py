""".env.example lists every setting the code reads, and nothing else."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# os.environ.get("X"), env.get("X"), env["X"], and the settings modules' own get("X", ...)
PATTERNS = [re.compile(r'(?:environ|env)\.get\(\s*"([A-Z][A-Z0-9_]+)"'), re.compile(r'env\["([A-Z][A-Z0-9_]+)"\]')]
SETTINGS_GET = re.compile(r'\bget\("([A-Z][A-Z0-9_]+)"')
YAML_ENV = re.compile(r'\benv:\s*([A-Z][A-Z0-9_]+)')  # Dagster's {env: NAME} in deploy/*.yaml


def names_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in list((REPO / "ingestion").rglob("*.py")) + list((REPO / "orchestration").rglob("*.py")):
        text = path.read_text()
        for pattern in PATTERNS:
            names.update(pattern.findall(text))
        if path.name == "settings.py":
            names.update(SETTINGS_GET.findall(text))
    for path in (REPO / "deploy").glob("*.yaml"):
        names.update(YAML_ENV.findall(path.read_text()))
    return names


# set in the steps that use .env, not in it: an empty value in .env would unset it for Dagster
COMMENTED_OUT = {"DAGSTER_HOME"}


def names_in_env_example() -> set[str]:
    lines = (REPO / ".env.example").read_text().splitlines()
    names = {line.split("=", 1)[0].strip() for line in lines if line.strip() and not line.startswith("#")}
    commented = {line[2:].split("=", 1)[0] for line in lines if line.startswith("# ") and "=" in line}
    return names | (commented & COMMENTED_OUT)


def test_commented_out_settings_stay_out_of_env():
    lines = (REPO / ".env.example").read_text().splitlines()
    assert not [line for line in lines if line.startswith(tuple(f"{n}=" for n in COMMENTED_OUT))]


def test_env_example_matches_the_code_both_ways():
    code, example = names_read_by_code(), names_in_env_example()
    assert len(code) > 30
    assert code - example == set(), f"read by the code but missing from .env.example: {sorted(code - example)}"
    assert example - code == set(), f"in .env.example but read by nothing: {sorted(example - code)}"


def test_secrets_have_no_value_in_the_example():
    for line in (REPO / ".env.example").read_text().splitlines():
        name, _, value = line.partition("=")
        if name.endswith(("_TOKEN", "_API_KEY", "_SECRET", "_ACCESS_CODE")):
            assert value == "", f"{name} must be empty in .env.example"
