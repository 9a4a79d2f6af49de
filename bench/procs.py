"""Servers under test as child processes: start, time the first successful answer, read peak RSS, stop.

Only processes this module started are ever signalled, by their own pid.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """The ``Vm*`` lines of /proc/<pid>/status, in KiB (VmHWM is the peak resident set since start)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Vm"):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


def stat_fields(path: str | Path) -> list[str]:
    """The fields of a /proc ``stat`` file after the command name: index 1 is the parent's pid, 11 and 12 the user
    and system CPU time in clock ticks (a process's, all threads; or one thread's, under ``task/<tid>/``)."""
    return Path(path).read_text().rsplit(")", 1)[1].split()


def cpu_times(path: str | Path) -> tuple[float, float]:
    """(user, system) CPU seconds of a /proc ``stat`` file."""
    fields, tick = stat_fields(path), os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


@dataclass
class Server:
    name: str
    cmd: list[str]
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    cold_start_s: float = 0.0
    cold_start_cpu_s: float = 0.0
    extra: dict[str, Path] = field(default_factory=dict)  # per peer: an emulator's tmpdir, moto's python

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the process (all its threads) has used so far."""
        return sum(cpu_times(f"/proc/{self.pid}/stat"))

    def rss_mib(self) -> float:
        return proc_status(self.pid)["VmRSS"] / 1024

    def peak_rss_mib(self) -> float:
        return proc_status(self.pid)["VmHWM"] / 1024

    def start(
        self, ready: Callable[[], bool], env: dict[str, str] | None = None, timeout: float = 120.0, poll: float = 0.005
    ) -> Server:
        """Spawn and wait until ``ready()`` (one real request) succeeds; the cold start is spawn → that answer."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        logfile = self.log.open("ab")
        started = time.perf_counter()
        self.popen = subprocess.Popen(
            self.cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        logfile.close()
        deadline = started + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; see {self.log}")
            try:
                if ready():
                    break
            except OSError:
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log}")
            time.sleep(poll)
        self.cold_start_s = time.perf_counter() - started
        self.cold_start_cpu_s = self.cpu_seconds()  # robust to other work on the machine, unlike the wall time
        return self

    def run(self) -> Server:
        """Spawn and wait until ready: each peer (bench/peers.py) says how it starts and what ready means."""
        raise NotImplementedError(f"{type(self).__name__} does not say how it starts")

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
