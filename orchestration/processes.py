"""A tiny supervisor for the demo and benchmarks: start child processes in their own process
groups, stop them all (SIGTERM, then SIGKILL) on exit, Ctrl-C or SIGTERM, leaving no orphan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping, Sequence


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path | None = None


@dataclass
class Supervisor:
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    children: list[Child] = field(default_factory=list)
    _logs: list[IO] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: str | Path | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**self.env, **(env or {})}, cwd=cwd,
            start_new_session=True,  # own process group: we can kill its whole tree
        )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def python(self, name: str, module_args: Sequence[str], **kwargs) -> Child:
        return self.start(name, [sys.executable, "-m", *module_args], **kwargs)

    def dead(self) -> list[Child]:
        return [c for c in self.children if c.proc.poll() is not None]

    def stop_all(self, timeout: float = 10.0) -> None:
        for child in reversed(self.children):
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.proc.wait(remaining)
            except subprocess.TimeoutExpired:
                pass
            # Kill whatever is left of the group (dagster spawns grandchildren).
            _signal_group(child.proc, signal.SIGKILL)
            try:
                child.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass

