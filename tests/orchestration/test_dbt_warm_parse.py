"""The dbt project parsed once in the code server's forkserver (orchestration/dbt/warm_parse.py):
a run's build that is handed that Manifest gives the same Dagster events as one that parses, and
a build with other parse inputs never gets it."""

import importlib
import re
import sys

import pytest

from orchestration.dbt import in_process
from orchestration.dbt.assets import dbt_resource
from orchestration.dbt.project import TRANSFORMATION_DIR

from .test_dbt_in_process import build


@pytest.fixture
def warm(monkeypatch):
    """Import warm_parse as the forkserver does (the import parses), and forget it afterwards."""
    def load():
        monkeypatch.delitem(sys.modules, in_process.WARM_MODULE, raising=False)
        module = importlib.import_module(in_process.WARM_MODULE)
        assert module.PARSED is not None
        return module
    yield load
    sys.modules.pop(in_process.WARM_MODULE, None)


@pytest.fixture
def handed(monkeypatch):
    """What warm_manifest gave each dbt invocation (a Manifest or None)."""
    seen = []
    real = in_process.warm_manifest
    monkeypatch.setattr(in_process, "warm_manifest", lambda *a: seen.append(real(*a)) or seen[-1])
    return seen


@pytest.fixture
def parses(monkeypatch):
    """How often dbt parsed the project (its one way in: ManifestLoader.get_full_manifest)."""
    from dbt.parser.manifest import ManifestLoader

    count = []
    real = ManifestLoader.get_full_manifest.__func__
    monkeypatch.setattr(ManifestLoader, "get_full_manifest",
                        classmethod(lambda cls, *a, **k: count.append(1) or real(cls, *a, **k)))
    return count


def test_a_build_with_the_warm_manifest_gives_the_events_of_one_that_parses(tmp_path, monkeypatch, warm, handed,
                                                                              parses):
    from ingestion.raw_schema import connect

    for name in ("warm", "cold"):
        (tmp_path / name).mkdir()
        connect(tmp_path / name / "print_history.db").close()
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "warm"))
    module = warm()
    assert len(parses) == 1  # the import parsed
    with_warm = build(tmp_path / "warm", monkeypatch, dbt_resource())
    assert handed == [module.PARSED[1]] and len(parses) == 1  # the build did not parse again
    sys.modules.pop(in_process.WARM_MODULE)
    parsed = build(tmp_path / "cold", monkeypatch, dbt_resource())
    assert handed[-1] is None and len(parses) == 2
    assert with_warm == parsed
    assert with_warm["materialized"]["silver_print_jobs"].value >= 1 and len(with_warm["checks"]) > 20


def test_a_build_for_another_data_dir_parses_for_itself(tmp_path, monkeypatch, warm, handed):
    from ingestion.raw_schema import connect

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "parsed_for"))
    warm()
    (tmp_path / "other").mkdir()
    connect(tmp_path / "other" / "print_history.db").close()
    result = build(tmp_path / "other", monkeypatch, dbt_resource())  # its DATA_DIR is another profile
    assert handed == [None] and result["materialized"]["silver_print_jobs"].value >= 1


def test_only_data_dir_reaches_the_parse_from_the_environment():
    """parse_key holds the environment a parse reads: DATA_DIR (profiles.yml). A model or yml that
    read another variable would need it in the key too."""
    names = set()
    for path in TRANSFORMATION_DIR.rglob("*"):
        if path.suffix in (".sql", ".yml", ".yaml") and not {"target", "target-docs", "logs"} & set(path.parts):
            names |= set(re.findall(r"env_var\(\s*['\"](\w+)['\"]", path.read_text()))
    assert names == {"DATA_DIR"} and "DATA_DIR" in in_process.KEY_ENV_PATHS

