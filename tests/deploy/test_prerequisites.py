"""`make test` checks the system tools it needs (deploy/check-tools.sh): installs the missing ones
with apt-get as root, else stops with one line naming the install command. PATH is narrowed to a
folder of our own, so "missing" is real for the script; apt-get there is a recording stand-in."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "check-tools.sh"
TOOLS = ["mosquitto", "openssl", "docker-compose", "chromium"]
SH = shutil.which("sh")


@pytest.fixture
def bin_dir():
    # directly under /tmp: pytest's tmp_path is private to root, and one test runs as nobody
    top = Path(tempfile.mkdtemp(prefix="printfarm-tools-"))
    folder = top / "bin"
    folder.mkdir()
    os.symlink(shutil.which("id"), folder / "id")  # what the script itself runs
    for path in (top, folder):
        path.chmod(0o755)
    yield folder
    shutil.rmtree(top)


def stub(folder: Path, name: str, body: str = "exit 0") -> None:
    (folder / name).write_text(f"#!{SH}\n{body}\n")
    (folder / name).chmod(0o755)


def check(bin_dir: Path, *prefix: str, **env: str) -> subprocess.CompletedProcess:
    script = shutil.copy(SCRIPT, bin_dir.parent / SCRIPT.name)  # readable by nobody wherever the clone is
    return subprocess.run([*prefix, SH, str(script)], env={"PATH": str(bin_dir), **env}, capture_output=True,
                          text=True, timeout=30)


def test_all_tools_present_is_silent(bin_dir):
    for tool in TOOLS:
        stub(bin_dir, tool)
    proc = check(bin_dir)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_not_root_names_the_exact_install_command(bin_dir):
    stub(bin_dir, "openssl")
    stub(bin_dir, "apt-get", "echo apt-get must not run >&2; exit 3")
    proc = check(bin_dir, shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups")
    assert proc.returncode == 1
    assert proc.stderr == ("make test needs mosquitto docker-compose chromium: "
                           "sudo apt-get install -y mosquitto docker-compose chromium\n")


def test_a_python_without_venv_support_needs_python3_venv_until_the_venv_exists(bin_dir):
    for tool in TOOLS:
        stub(bin_dir, tool)
    stub(bin_dir, "python3", 'case "$*" in *ensurepip*) exit 1;; esac')  # Debian's python3 without python3-venv
    venv = bin_dir.parent / "venv"
    proc = check(bin_dir, PYTHON="python3", VENV=str(venv))
    assert proc.stderr == "make test needs python3-venv: sudo apt-get install -y python3-venv\n"
    (venv / "bin").mkdir(parents=True)
    stub(venv / "bin", "python")
    assert check(bin_dir, PYTHON="python3", VENV=str(venv)).returncode == 0  # made already: nothing to install


def test_root_without_apt_get_names_the_command(bin_dir):
    proc = check(bin_dir)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.endswith(": sudo apt-get install -y mosquitto openssl docker-compose chromium\n")


def test_root_installs_the_missing_ones_with_apt_get(bin_dir):
    stub(bin_dir, "mosquitto")
    stub(bin_dir, "openssl")
    log = bin_dir.parent / "apt.log"
    # records its arguments and "installs": each package named after the options becomes a tool
    stub(bin_dir, "apt-get", f'echo "$*" >> {log}\n[ "$1" = install ] || exit 0\n'
                             f'for p in "$@"; do case "$p" in -*|install) ;; *) /usr/bin/cp {bin_dir}/openssl {bin_dir}/$p;; esac; done')
    proc = check(bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "make test: installing docker-compose chromium (apt-get)\n"
    assert log.read_text().splitlines() == ["update -qq", "install -y -qq --no-install-recommends docker-compose chromium"]
    assert check(bin_dir).stderr == ""  # installed: silent from now on


def test_root_apt_get_that_installs_nothing_fails(bin_dir):
    stub(bin_dir, "apt-get")
    proc = check(bin_dir)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == "make test: still missing after apt-get: mosquitto openssl docker-compose chromium"


def test_make_test_runs_the_check_first():
    # outside the make that may be running this suite (it would add "Entering directory" lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "MFLAGS"}
    lines = subprocess.run(["make", "-n", "test"], cwd=REPO, env=env, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    check = next(i for i, line in enumerate(lines) if "check-tools.sh" in line)
    assert "/usr/sbin" in lines[check]
    assert check < next(i for i, line in enumerate(lines) if "pytest" in line)


def test_ci_run_ignores_sigint_like_a_runner_and_kills_nothing():
    text = (REPO / ".ci" / "run").read_text()
    commands = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "trap '' INT" in commands and commands[-1] == "make test"
    for word in ("pkill", "killall", "kill ", "systemctl", "service "):
        assert not any(word in line for line in commands), f".ci/run must not run {word.strip()}"
