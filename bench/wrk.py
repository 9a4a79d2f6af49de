"""wrk: the Lua script that makes it POST a JSON body, the command line, and the parser for its ``--latency`` output."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int = 0
    socket_errors: int = 0

    @property
    def clean(self) -> bool:
        """Every response was 2xx/3xx and no socket failed: the figure measures the operation, not an error path."""
        return self.non_2xx == 0 and self.socket_errors == 0 and self.requests > 0


def lua_script(method: str, headers: dict[str, str], body: str) -> str:
    """A wrk script sending one fixed request; long brackets keep the body verbatim (no Lua escaping)."""
    level = "=" * 4
    assert f"]{level}]" not in body
    lines = [f'wrk.method = "{method}"', f"wrk.body = [{level}[{body}]{level}]"]
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    return "\n".join(lines) + "\n"


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse(output: str) -> WrkResult:
    """Figures from ``wrk --latency`` output; raises ValueError when a required line is missing."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(rf"^\s+50(?:\.000)?%\s+{_TIME}", output, re.M)
    p99 = re.search(rf"^\s+99(?:\.000)?%\s+{_TIME}", output, re.M)
    total = re.search(r"^\s+(\d+) requests in ", output, re.M)
    if not (rps and p50 and p99 and total):
        raise ValueError(f"not wrk --latency output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sock.groups()) if sock else 0,
    )


def command(url: str, script_path: str, connections: int, seconds: float, wrk: str = "wrk") -> list[str]:
    """One wrk thread (the server under test gets the other core), whole seconds (wrk takes no fractions)."""
    return [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        script_path,
        url,
    ]


def run(url: str, script_path: str, connections: int, seconds: float, wrk: str = "wrk") -> WrkResult:
    done = subprocess.run(
        command(url, script_path, connections, seconds, wrk),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return parse(done.stdout)
