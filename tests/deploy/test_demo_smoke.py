"""The README's demo command, headless and bounded: simulated prints reach the InvenTree stand-in
through the real logger, Dagster sensors/daemon and dbt, links reach the Bambuddy stand-in, the
Dagster GraphQL API shows inventree_stock materialized and the community pop-up off, a Bambuddy
link opens the part's page; then nothing it started is left running."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion.devbroker import free_port

REPO = Path(__file__).resolve().parents[2]


def leftovers(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                # every process the demo starts has the demo's DATA_DIR in its environment
                environ = (proc / "environ").read_bytes().decode(errors="replace")
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if (marker in environ or marker in cmdline) and str(os.getpid()) != proc.name:
                found.append(cmdline)
    return found


@pytest.mark.slow
def test_demo_reaches_inventree_and_leaves_no_process(tmp_path):
    workdir = tmp_path / "demo"
    shots = REPO / "screenshots"  # git-ignored; kept for a person to look at
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTREE_", "BAMBUDDY_", "DAGSTER_HOME"))}
    proc = subprocess.run([sys.executable, "-m", "orchestration.demo", "--smoke", "200", "--workdir", str(workdir),
                           "--dagster-port", str(free_port()), "--docs-port", str(free_port()),
                           "--api-port", str(free_port()), "--screenshots", str(shots)],
                          cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DEMO STAND-IN" in proc.stdout and "smoke: prints reached InvenTree" in proc.stdout
    assert "/web/part/" in proc.stdout  # progress lines name the newest part's page (the smoke opened one)
    assert leftovers(str(workdir)) == []
    # a real browser rendered the pages a person opens: the Dagster asset and the dbt docs lineage
    for name, expected in (("dagster-inventree_stock", "inventree_stock"),
                           ("dbt-docs-silver_print_jobs", "silver_print_jobs")):
        assert (shots / f"{name}.png").read_bytes().startswith(b"\x89PNG"), name
        assert expected in (shots / f"{name}.html").read_text(), f"{name} did not render {expected}"
