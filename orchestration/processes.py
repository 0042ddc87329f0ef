"""Child processes with clean signals, and a tiny supervisor for the demo and benchmarks.

Every child gets its own process group and default signal dispositions. Both matter: a parent
started with SIGINT ignored (`cmd &` in a script, nohup, many CI runners) passes SIG_IGN through
exec, and Dagster maps SIGTERM onto SIGINT's handler (`setup_interrupt_handlers`, also after every
in-process run), so a daemon or server started from such a parent would ignore the SIGTERM that
is meant to stop it. Children are stopped by their group (SIGTERM, then SIGKILL), leaving no orphan.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping, Sequence

_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}


def default_signals() -> None:
    """preexec_fn: SIG_DFL for every signal and an empty mask (SIG_IGN and the mask survive exec)."""
    for sig in signal.valid_signals():
        if sig not in _UNCATCHABLE:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def child_options() -> dict:
    """Popen keyword arguments for any long-lived child: own process group, default signals."""
    return {"start_new_session": True, "preexec_fn": default_signals}


def spawn(args: Sequence[str], **kwargs) -> subprocess.Popen:
    """subprocess.Popen with child_options(); stop it with stop()."""
    return subprocess.Popen(list(args), **child_options(), **kwargs)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int | None:
    """SIGTERM to the child's group, SIGKILL to what is left after `timeout`; returns the exit code."""
    signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    signal_group(proc, signal.SIGKILL)  # grandchildren too (dagster spawns run workers)
    try:
        return proc.wait(2)
    except subprocess.TimeoutExpired:
        return None


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path | None = None
    restart: bool = False  # like compose's `restart: unless-stopped`: revive() starts it again
    launch: dict = field(default_factory=dict, repr=False)
    restarts: int = 0


@dataclass
class Supervisor:
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    children: list[Child] = field(default_factory=list)
    _logs: list[IO] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: str | Path | None = None, restart: bool = False) -> Child:
        launch = {"args": list(args), "env": {**self.env, **(env or {})}, "cwd": cwd}
        child = Child(name, self._spawn(name, **launch), self.log_dir / f"{name}.log", restart=restart, launch=launch)
        self.children.append(child)
        return child

    def _spawn(self, name: str, args: Sequence[str], env: Mapping[str, str], cwd) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        self._logs.append(log)
        return spawn(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd)

    def revive(self) -> list[Child]:
        """Start again every restartable child that exited; what it left in its group goes first
        (a code server's run workers would otherwise hold on to its port and its runs)."""
        revived = []
        for child in self.children:
            if child.restart and child.proc.poll() is not None:
                signal_group(child.proc, signal.SIGKILL)
                child.proc = self._spawn(child.name, **child.launch)
                child.restarts += 1
                revived.append(child)
        return revived

    def python(self, name: str, module_args: Sequence[str], **kwargs) -> Child:
        return self.start(name, [sys.executable, "-m", *module_args], **kwargs)

    def dead(self) -> list[Child]:
        """Children that exited and are not restarted by revive()."""
        return [c for c in self.children if c.proc.poll() is not None and not c.restart]

    def stop_all(self, timeout: float = 10.0) -> None:
        for child in reversed(self.children):
            signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            stop(child.proc, max(0.1, deadline - time.monotonic()))
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()
