"""Signal hygiene: a parent that ignores SIGINT (a background job, nohup, CI runners) and the
SIGTERM that Dagster then ignores as well must not pass either on to the processes we start."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from dagster._utils.interrupts import capture_interrupts

from ingestion.devbroker import DevBroker
from orchestration.processes import Supervisor, spawn, stop

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def ignored(pid: int) -> set[int]:
    """Signals the process ignores, from /proc (the kernel's view, nothing the child reports)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {sig for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if mask >> (sig - 1) & 1}
    raise AssertionError("no SigIgn line")


@contextmanager
def started_in_the_background():
    """This process as a runner's background job leaves it: SIGINT ignored."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


def test_dagster_turns_an_ignored_sigint_into_an_ignored_sigterm():
    # The mechanism behind the orphan servers: every in-process run leaves SIGTERM like SIGINT.
    with started_in_the_background():
        with capture_interrupts():
            pass
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        plain = subprocess.Popen(SLEEP)
        try:
            assert ignored(plain.pid) == {signal.SIGINT, signal.SIGTERM}  # what a bare Popen passes on
        finally:
            plain.kill()
            plain.wait()


def test_children_get_default_signals_their_own_group_and_stop_on_sigterm(tmp_path):
    with started_in_the_background():
        with capture_interrupts():
            pass
        proc = spawn(SLEEP)
        with Supervisor(tmp_path / "logs") as procs:
            child = procs.start("sleeper", SLEEP)
            assert ignored(child.proc.pid) == set()
        assert child.proc.returncode == -signal.SIGTERM
    assert ignored(proc.pid) == set()
    assert os.getpgid(proc.pid) == proc.pid  # its own group: stop() reaches its children too
    started = time.monotonic()
    assert stop(proc, timeout=5) == -signal.SIGTERM  # SIGTERM did it, not the SIGKILL after 5 s
    assert time.monotonic() - started < 4


def test_the_dev_broker_gets_default_signals(tmp_path):
    with started_in_the_background():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with DevBroker(workdir=tmp_path, kind="mosquitto") as broker:
            assert signal.SIGINT not in ignored(broker.proc.pid)
            proc = broker.proc
        assert proc.returncode is not None


def test_revive_restarts_what_may_restart_and_clears_its_group_first(tmp_path):
    """Like compose's `restart: unless-stopped`: a dead code server comes back, but whatever it
    left in its group (run workers holding its port) goes first. Others stay dead and are told."""
    leaves_a_child = [sys.executable, "-c", "import subprocess, sys, time; "
                      f"subprocess.Popen({SLEEP!r}); print('up', flush=True); time.sleep(60)"]
    with Supervisor(tmp_path / "logs") as procs:
        code = procs.start("code", leaves_a_child, restart=True)
        once = procs.start("once", [sys.executable, "-c", "pass"])
        deadline = time.monotonic() + 20
        while "up" not in (tmp_path / "logs" / "code.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        first = code.proc
        left = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == first.pid
                and int(p) != first.pid]
        assert left, "the child's own child is in its group"
        os.kill(first.pid, signal.SIGKILL)  # the leader dies, its child lives on
        first.wait()
        once.proc.wait()
        assert [c.name for c in procs.dead()] == ["once"]  # the restartable one is not "dead"
        revived = procs.revive()
        assert [c.name for c in revived] == ["code"] and code.proc is not first and code.restarts == 1
        assert code.proc.poll() is None and once.proc.poll() is not None
        time.sleep(0.2)
        assert all(_pgid(pid) is None for pid in left), "what the dead one left was stopped"
        assert procs.revive() == []  # nothing else to do while it runs


def _pgid(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[2])
