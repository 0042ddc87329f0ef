"""The dbt resource skips dagster-dbt's per-run `dbt --version` subprocess and in-process
adapter: the version it reports must still be the one the dbt executable gives."""

import re
import subprocess

from orchestration.dbt.assets import PrintfarmDbtCli, dbt_resource
from orchestration.dbt.project import dbt_executable


def test_the_version_known_without_a_subprocess_is_the_executables_own():
    resource = dbt_resource()
    assert isinstance(resource, PrintfarmDbtCli)
    out = subprocess.run([dbt_executable(), "--version"], capture_output=True, text=True, check=True).stdout
    assert str(resource._cli_version) == re.search(r"(\d+\.\d+\.\d+)", out).group(1)
    assert resource._cli_version.major < 2  # dbt Core: dagster-dbt takes the Core code paths
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_another_dbt_on_path_is_asked_for_its_version(tmp_path):
    fake = tmp_path / "dbt"
    fake.write_text("#!/bin/sh\necho 'Core:\n  - installed: 1.9.4'\n")
    fake.chmod(0o755)
    resource = PrintfarmDbtCli(project_dir=dbt_resource().project_dir, dbt_executable=str(fake))
    assert str(resource._cli_version) == "1.9.4"
