"""The servers a run compares: the emulator, Prism (mock of the same effective spec), moto, and the raw sink.

Prism and moto are installed on first use into the cache directory (never into the project's venv) and reused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import client
from bench.procs import Server, free_port

HERE = Path(__file__).resolve().parent
PRISM_PACKAGE = "@stoplight/prism-cli@5.14.2"
PE_KEY = "pe_live_" + "0123456789abcdef" * 2
PE_PATH = "/v1/media/upload"  # the operation's path in the spec
JSON_BODY = {"filename": "product-photo.jpg", "content_type": "image/jpeg", "size": 2048576}  # published example
RATE_LIMITS = ["posteverywhere.minute=1000000000", "posteverywhere.hour=1000000000", "posteverywhere.day=1000000000"]


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "upload-emulator-bench"


def clean_env(**extra: str) -> dict[str, str]:
    """The harness's environment without UPLOAD_EMULATOR_* settings, so every server runs with what we pass, and
    without PYTHONDONTWRITEBYTECODE: an installed emulator starts from cached bytecode, not by compiling its
    sources on every start."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_EMULATOR_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(extra)
    return env


# --- installers ----------------------------------------------------------------------------------------------------


def ensure_prism(cache: Path) -> list[str]:
    """The command that runs Prism (node + its CLI), installing ``PRISM_PACKAGE`` into the cache on first use.

    Prism runs from its installed bin rather than through ``npx`` each time, so cold start measures Prism, not npm
    resolving the package.
    """
    prefix = cache / "prism"
    bin_ = prefix / "node_modules" / ".bin" / "prism"
    stamp = prefix / ".installed"
    if not bin_.exists() or not stamp.exists() or stamp.read_text() != PRISM_PACKAGE:
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", PRISM_PACKAGE],
            check=True,
        )
        stamp.write_text(PRISM_PACKAGE)
    return [shutil.which("node") or "node", str(bin_.resolve())]


def ensure_moto(cache: Path) -> Path:
    """The python of a venv holding moto[server] and boto3 (``requirements-moto.txt``), made on first use."""
    venv = cache / "moto-venv"
    python = venv / "bin" / "python"
    requirements = HERE / "requirements-moto.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / ".installed"
    if not python.exists() or not stamp.exists() or stamp.read_text() != digest:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
        stamp.write_text(digest)
    return python


def versions(prism_cmd: list[str], moto_python: Path) -> dict[str, str]:
    """Versions of everything measured, for the README's machine description."""
    import platform

    import starlette
    import uvicorn

    out = {"python": platform.python_version(), "uvicorn": uvicorn.__version__, "starlette": starlette.__version__}
    for module in ("uvloop", "httptools", "orjson"):
        try:
            out[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            out[module] = "absent"
    out["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    out["prism"] = subprocess.run([*prism_cmd, "--version"], capture_output=True, text=True).stdout.strip()
    out["moto"] = subprocess.run(
        [str(moto_python), "-c", "import moto; print(moto.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    out["wrk"] = (wrk.stdout or wrk.stderr).split("\n")[0].split(" Copyright")[0]
    return out


# --- the emulator ----------------------------------------------------------------------------------------------------


def emulator_exe() -> list[str]:
    script = Path(sys.executable).parent / "upload-emulator"
    return [str(script)] if script.exists() else [sys.executable, "-m", "emulator"]


class Emulator(Server):
    """``upload-emulator serve`` (all providers, access log off) with PostEverywhere's limits raised."""

    prefix = "/posteverywhere/api"

    @classmethod
    def make(cls, work: Path, tag: str) -> Emulator:
        port = free_port()
        cmd = [*emulator_exe(), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        for limit in RATE_LIMITS:
            cmd += ["--rate-limit", limit]
        server = cls(name=f"emulator/{tag}", cmd=cmd, port=port, log=work / "logs" / f"emulator-{tag}.log")
        # default settings (no --data-dir: in-memory state, bytes in a temp dir); TMPDIR puts that temp dir in the
        # run's scratch directory, on the filesystem the write ceiling is measured on, removed with it
        server.extra["tmpdir"] = work / "data" / tag
        return server

    @property
    def json_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}{PE_PATH}"

    def ready(self) -> bool:
        return self._upload(JSON_BODY).status == 201

    def _upload(self, body: dict[str, Any]) -> client.Reply:
        return client.request(
            self.json_url,
            "POST",
            {"Authorization": f"Bearer {PE_KEY}", "Content-Type": "application/json"},
            json.dumps(body).encode(),
        )

    def new_upload(self, filename: str, content_type: str, size: int) -> str:
        """Step 1 of the flow: a fresh presigned ``upload_url``."""
        reply = self._upload({"filename": filename, "content_type": content_type, "size": size})
        if reply.status != 201:
            raise RuntimeError(f"POST {PE_PATH} answered {reply.status}: {reply.body[:300]!r}")
        return json.loads(reply.body)["data"]["upload_url"]

    def run(self) -> Emulator:
        tmpdir = self.extra["tmpdir"]
        tmpdir.mkdir(parents=True, exist_ok=True)
        self.start(self.ready, env=clean_env(TMPDIR=str(tmpdir)))
        return self


def effective_spec() -> dict[str, Any]:
    """The effective PostEverywhere spec, through the CLI (``upload-emulator specs show posteverywhere``)."""
    done = subprocess.run(
        [*emulator_exe(), "specs", "show", "posteverywhere"],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
    )
    return json.loads(done.stdout)


def prism_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy Prism can serve at the same paths as the emulator's per-provider mode (``/api/v1/...``).

    Prism mocks every path at the root and ignores the server's base path, so the copy moves the base path
    (``/api`` of ``https://app.posteverywhere.ai/api``) into every path and names a relative server.
    """
    out = copy.deepcopy(spec)
    base = urlsplit(spec["servers"][0]["url"]).path.rstrip("/")
    out["servers"] = [{"url": "/"}]
    out["paths"] = {f"{base}{path}": item for path, item in spec["paths"].items()}
    return out


class Prism(Server):
    prefix = "/api"

    @classmethod
    def make(cls, work: Path, prism_cmd: list[str], spec_path: Path, silent: bool, tag: str) -> Prism:
        port = free_port()
        cmd = [*prism_cmd, "mock", "-h", "127.0.0.1", "-p", str(port)]
        if silent:
            cmd += ["-v", "silent"]
        cmd.append(str(spec_path))
        # default mode logs every request; like the reference figures, the log goes to a file, not a terminal
        return cls(name=f"prism/{tag}", cmd=cmd, port=port, log=work / "logs" / f"prism-{tag}.log")

    @property
    def json_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}{PE_PATH}"

    def ready(self) -> bool:
        reply = client.request(
            self.json_url,
            "POST",
            {"Authorization": f"Bearer {PE_KEY}", "Content-Type": "application/json"},
            json.dumps(JSON_BODY).encode(),
        )
        return reply.status == 201

    def run(self) -> Prism:
        self.start(self.ready, env=clean_env())
        return self


class Bare(Server):
    """``bench/bare.py`` under uvicorn: the calibration endpoint."""

    @classmethod
    def make(cls, work: Path) -> Bare:
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--loop",
            "auto",
            "--http",
            "auto",
        ]
        return cls(name="bare-starlette", cmd=cmd, port=port, log=work / "logs" / "bare.log")

    @property
    def json_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api{PE_PATH}"

    def run(self) -> Bare:
        body = json.dumps(JSON_BODY).encode()
        headers = {"Authorization": f"Bearer {PE_KEY}", "Content-Type": "application/json"}
        self.start(
            lambda: client.request(self.json_url, "POST", headers, body).status == 201,
            env=clean_env(PYTHONPATH=str(HERE.parent)),
        )
        return self


# --- moto --------------------------------------------------------------------------------------------------------


class Moto(Server):
    bucket = "bench"

    @classmethod
    def make(cls, work: Path, python: Path, tag: str) -> Moto:
        port = free_port()
        server = cls(
            name=f"moto/{tag}",
            cmd=[str(python), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            port=port,
            log=work / "logs" / f"moto-{tag}.log",
        )
        server.extra["python"] = python
        return server

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return client.request(self.endpoint + "/").status == 200

    def run(self) -> Moto:
        self.start(self.ready, env=clean_env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"))
        return self

    def presign(self, mode: str, count: int, prefix: str) -> list[Any]:
        """``count`` presigned PUT URLs (``mode="put"``), POST forms (``"post"``) or HEAD URLs of the objects those
        uploaded under ``prefix`` (``"head"``), boto3 SigV4."""
        done = subprocess.run(
            [
                str(self.extra["python"]),
                str(HERE / "moto_presign.py"),
                self.endpoint,
                self.bucket,
                mode,
                str(count),
                prefix,
            ],
            capture_output=True,
            text=True,
            check=True,
            env=clean_env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"),
        )
        return json.loads(done.stdout)


# --- the raw sink ------------------------------------------------------------------------------------------------


class Sink(Server):
    @classmethod
    def make(cls, work: Path) -> Sink:
        port = free_port()
        return cls(
            name="loopback-sink",
            cmd=[sys.executable, str(HERE / "sink.py"), str(port)],
            port=port,
            log=work / "logs" / "sink.log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sink"

    def run(self) -> Sink:
        self.start(lambda: client.request(self.url).status == 200)
        return self
