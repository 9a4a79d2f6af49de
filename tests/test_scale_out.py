"""Several ``serve`` processes sharing one state through Redis (``--state redis://…``) and one data directory act as
one emulator: limits exact over both, an upload moving between them, the clock and reset shared, ``--workers``,
and Redis going away and coming back. Everything through HTTP against live processes on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from starlette.types import Message

from emulator import serve
from emulator.testing import ControlClient, free_port
from tests.helpers import AUTH, MP4, PE, child_pids
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.live, pytest.mark.anyio]


class Process:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url


def _start(*flags: str, port: int | None = None) -> Process:
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_EMULATOR_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/_emulator/health", timeout=1).status_code == 200:
                return Process(proc, url)
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"serve did not start: {out}\n{err}")
        time.sleep(0.1)


def _stop(process: Process) -> None:
    process.proc.terminate()
    try:
        out, err = process.proc.communicate(timeout=20)
        if os.environ.get("H19_DEBUG"):
            print(err[-5000:])
    except subprocess.TimeoutExpired:
        process.proc.kill()
        process.proc.communicate()


@pytest.fixture
def pair(redis_url: str, tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    """Two processes on one Redis database and one data directory."""
    flags = ("--state", redis_url, "--data-dir", str(tmp_path / "data"), "--rate-limit", "posteverywhere.minute=20")
    first = _start(*flags)
    try:
        second = _start(*flags)
    except BaseException:
        _stop(first)
        raise
    yield first, second
    for process in (first, second):
        _stop(process)


def _on(url: str, origin: str) -> str:
    """``url`` sent to another process: same path and query, that process's host and port."""
    parts, target = urlsplit(url), urlsplit(origin)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))


async def _new_upload(
    http: httpx.AsyncClient, process: Process, filename: str, content_type: str, size: int, headers: Any = AUTH
) -> httpx.Response:
    """Step 1 of a PostEverywhere upload, asked of ``process``: its answer holds the ``upload_url``."""
    return await http.post(
        f"{process.url}{PE}/media/upload",
        headers=headers,
        json={"filename": filename, "content_type": content_type, "size": size},
    )


async def test_limits_are_exact_for_fifty_concurrent_clients_spread_over_two_processes(pair):
    first, second = pair
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(
            *(http.get(f"{(first, second)[n % 2].url}{PE}/media", headers=AUTH) for n in range(50))
        )
    statuses = [r.status_code for r in answers]
    # 25 requests went to each process: with the limit split, each would have admitted 20 (40 in all). Which
    # process admits is a race (requests waiting at once reach Redis in one batch, which may take every admission)
    assert statuses.count(200) == 20 and statuses.count(429) == 30, statuses
    assert {r.url.port for r in answers} == {urlsplit(p.url).port for p in (first, second)}
    remaining = sorted(int(r.headers["x-ratelimit-remaining"]) for r in answers if r.status_code == 200)
    assert remaining == list(range(20))  # each admission counted once, in one window
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1


async def test_upload_started_on_one_process_is_sent_to_the_other_completed_on_the_first_read_on_the_second(pair):
    first, second = pair
    async with httpx.AsyncClient(timeout=30) as http:
        started = await _new_upload(http, first, "clip.mp4", "video/mp4", len(MP4))
        assert started.status_code == 201, started.text
        data = started.json()["data"]
        put = await http.put(_on(data["upload_url"], second.url), content=MP4, headers=data["upload_method"]["headers"])
        assert put.status_code == 200, put.text  # the URL signed by the first process verifies on the second
        done = await http.post(f"{first.url}{PE}/media/{data['media_id']}/complete", headers=AUTH)
        assert done.status_code == 200, done.text
        assert done.json()["data"]["status"] == "ready" and done.json()["data"]["size"] == len(MP4)
        seen = await http.get(f"{second.url}{PE}/media/{data['media_id']}", headers=AUTH)
        assert seen.status_code == 200 and seen.json()["data"]["status"] == "ready"
        served = await http.get(_on(seen.json()["data"]["url"], second.url))
        assert served.status_code == 200 and served.content == MP4
        listed = await http.get(f"{first.url}{PE}/media", headers=AUTH)
        assert [m["id"] for m in listed.json()["data"]["media"]] == [data["media_id"]]


async def test_an_image_hashed_at_its_first_read_on_one_process_has_that_md5_on_the_other(pair, tmp_path: Path):
    """A form's file is stored with its CRC-32 only; whichever process reads it first computes the MD5, and the
    other learns it from the record beside the shared bytes instead of hashing again."""
    first, second = pair
    png = (Path(__file__).parent.parent / "emulator" / "assets" / "sample.png").read_bytes() + os.urandom(5000)
    async with httpx.AsyncClient(timeout=30) as http:
        started = await _new_upload(http, first, "a.png", "image/png", len(png))
        data = started.json()["data"]
        sent = await http.post(data["upload_url"], files={"file": ("a.png", png, "image/png")})
        assert sent.status_code == 200, sent.text
        (record,) = (tmp_path / "data").glob("[0-9a-f][0-9a-f]/*.json")  # the pair's data directory
        assert '"md5": ""' in record.read_text() and '"crc32"' in record.read_text()
        read_url = data["upload_url"].partition("?")[0]
        served = await http.get(_on(read_url, second.url))
        assert served.status_code == 200 and served.content == png
        assert served.headers["etag"] == f'"{hashlib.md5(png).hexdigest()}"'
        assert hashlib.md5(png).hexdigest() in record.read_text()  # learned beside the bytes, for every process
        view = (await http.get(f"{first.url}/_emulator/state/posteverywhere")).json()
        assert [m["blob"]["md5"] for m in view["tables"]["media"]] == [hashlib.md5(png).hexdigest()]


async def test_the_clock_moved_on_one_process_is_the_clock_of_the_other(pair):
    first, second = pair
    async with httpx.AsyncClient(timeout=30) as http:
        frozen = await http.post(f"{first.url}/_emulator/clock/freeze", json={"time": "2030-01-01T00:00:00Z"})
        assert frozen.status_code == 200, frozen.text
        moved = await http.post(f"{second.url}/_emulator/clock/advance", json={"seconds": 90})
        assert moved.status_code == 200
        views = [(await http.get(f"{p.url}/_emulator/clock")).json() for p in (first, second)]
        assert views[0] == views[1] and views[0]["now"].startswith("2030-01-01T00:01:30")
        # provider timestamps read it too
        started = await _new_upload(http, first, "a.mp4", "video/mp4", len(MP4))
        media = await http.get(f"{second.url}{PE}/media/{started.json()['data']['media_id']}", headers=AUTH)
        assert media.json()["data"]["created_at"] == "2030-01-01T00:01:30.000Z"


async def test_reset_on_one_process_resets_every_process(pair, tmp_path: Path):
    first, second = pair
    async with httpx.AsyncClient(timeout=30) as http:
        started = await _new_upload(http, first, "a.mp4", "video/mp4", len(MP4))
        data = started.json()["data"]
        assert (
            await http.put(data["upload_url"], content=MP4, headers=data["upload_method"]["headers"])
        ).status_code == 200
        assert list((tmp_path / "data").glob("[0-9a-f][0-9a-f]/*"))  # stored by the first process
        for _ in range(5):
            await http.get(f"{second.url}{PE}/media", headers=AUTH)
        assert (await http.post(f"{second.url}/_emulator/reset", json={})).status_code in (200, 204)
        gone = await http.get(f"{first.url}{PE}/media/{data['media_id']}", headers=AUTH)
        assert gone.status_code == 404
        fresh = await http.get(f"{first.url}{PE}/media", headers=AUTH)
        # the shared window was emptied: only the two requests since the reset count
        assert fresh.headers["x-ratelimit-remaining"] == "18"
        assert list((tmp_path / "data").glob("[0-9a-f][0-9a-f]/*")) == []  # the bytes the first stored, too


async def test_redis_killed_mid_run_gives_503s_in_the_provider_envelope_then_service_resumes(
    pair, redis_server: RedisServer
):
    first, second = pair
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(f"{first.url}{PE}/media", headers=AUTH)).status_code == 200
        redis_server.stop()
        try:
            down = await http.get(f"{first.url}{PE}/media", headers=AUTH)
            assert down.status_code == 503 and down.headers["retry-after"] == "1"
            error = down.json()["error"]
            assert down.json()["data"] is None and error["retryable"] is True  # PostEverywhere's own envelope
            assert "state store unreachable" in error["message"]
            health = await http.get(f"{second.url}/_emulator/health")
            assert health.status_code == 503 and "unreachable" in health.json()["message"]
            assert health.headers["retry-after"] == "1"
        finally:
            redis_server.start()
        # no restart of either process: the next requests are served again (Redis came back empty)
        for process in (first, second):
            assert (await http.get(f"{process.url}/_emulator/health")).status_code == 200
            again = await http.get(f"{process.url}{PE}/media", headers=AUTH)
            assert again.status_code == 200 and again.json()["data"]["media"] == []
        started = await _new_upload(http, second, "a.mp4", "video/mp4", len(MP4))
        assert started.status_code == 201, started.text
        # the presign secret came back with Redis (the first process to notice put back the one they shared): a
        # URL signed by one process after the outage is still accepted by the other
        data = started.json()["data"]
        put = await http.put(_on(data["upload_url"], first.url), content=MP4, headers=data["upload_method"]["headers"])
        assert put.status_code == 200, put.text


def test_a_process_with_its_own_state_is_kept_out_of_a_shared_data_directory(pair, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "in use by another upload-emulator process" in done.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--workers", "2"), "--workers 2 needs --state redis://HOST:PORT/DB"),
        (("--workers", "0"), "--workers 0: expected 1 or more"),
        (("--state", "http://user:s3cret@127.0.0.1:1/0"), "a http URL; expected redis://HOST:PORT/DB"),
        (("--state", "redis://:s3cret@127.0.0.1:1/0"), "state store unreachable"),
    ],
)
def test_serve_refuses_settings_that_would_not_act_as_one_emulator(flags, message):
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", *flags], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert "s3cret" not in done.stderr  # a password in the URL is never repeated


def test_workers_serve_one_port_as_one_emulator(redis_url: str, tmp_path: Path):
    port = free_port()
    process = _start(
        "--workers",
        "2",
        "--state",
        redis_url,
        "--data-dir",
        str(tmp_path / "data"),
        "--rate-limit",
        "posteverywhere.minute=10",
        port=port,
    )
    try:
        statuses = []
        for _ in range(14):  # a new connection each time: the kernel spreads them over the workers
            with httpx.Client(timeout=30) as http:
                statuses.append(http.get(f"{process.url}{PE}/media", headers=AUTH).status_code)
        assert statuses == [200] * 10 + [429] * 4
    finally:
        _stop(process)


def _sockets_on(port: int) -> dict[str, set[int]]:
    """The inodes of the TCP sockets on local ``port``: listening ones and established ones (/proc/net)."""
    found: dict[str, set[int]] = {"listening": set(), "established": set()}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                cols = line.split()
                state = {"0A": "listening", "01": "established"}.get(cols[3])
                if state and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    found[state].add(int(cols[9]))
    return found


def _held(pid: int) -> set[int]:
    """The socket inodes among ``pid``'s open files."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _listening_workers(parent: int, port: int, count: int = 2, but: int | None = None) -> list[int]:
    """Wait until ``count`` worker processes of ``parent`` (none of them ``but``) hold a socket listening on ``port``;
    return them."""
    deadline = time.monotonic() + 60
    while True:
        listening = _sockets_on(port)["listening"]
        workers = [pid for pid in child_pids(parent) if pid != but and _held(pid) & listening]
        if len(workers) == count:
            return workers
        assert time.monotonic() < deadline, f"workers listening on {port}: {workers}, sockets: {listening}"
        time.sleep(0.2)


@pytest.mark.skipif(not serve.balanced(), reason="the kernel spreads connections over SO_REUSEPORT sockets on Linux")
def test_connections_opened_at_once_are_spread_over_the_workers(redis_url: str, tmp_path: Path):
    """Each worker listens on a socket of its own (SO_REUSEPORT), so a burst of connections, as a load generator or
    a client pool opens them, lands on both workers; on the one socket uvicorn shares, the first worker to wake took
    them all or most (32/0, 28/4, 22/10 of 32 measured)."""
    port = free_port()
    process = _start("--workers", "2", "--state", redis_url, "--data-dir", str(tmp_path / "data"), port=port)
    clients: list[socket.socket] = []
    try:
        workers = _listening_workers(process.proc.pid, port)
        deadline = time.monotonic() + 60
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        while True:  # every connection accepted by a worker
            established = _sockets_on(port)["established"]
            counts = [len(_held(pid) & established) for pid in workers]
            if sum(counts) == 64:
                break
            assert time.monotonic() < deadline, counts
            time.sleep(0.1)
        # by a hash of each connection's addresses: fewer than 16 of 64 on one worker has odds of ~1 in 30,000
        assert min(counts) >= 16, counts
        for client in clients:
            client.sendall(b"GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for client in clients:
            assert client.recv(64).startswith(b"HTTP/1.1 200 "), "a worker did not answer on its connection"
    finally:
        for client in clients:
            client.close()
        _stop(process)


@pytest.mark.skipif(not serve.balanced(), reason="the kernel spreads connections over SO_REUSEPORT sockets on Linux")
def test_workers_on_port_zero_all_listen_on_the_one_port_the_system_chose(redis_url: str, tmp_path: Path):
    flags = ["--workers", "2", "--state", redis_url, "--data-dir", str(tmp_path / "data"), "--log-level", "info"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_EMULATOR_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--host", "127.0.0.1", "--port", "0", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:  # uvicorn's log: "Uvicorn running on http://127.0.0.1:PORT"
            if "running on http://127.0.0.1:" in line:
                port = int(line.split("127.0.0.1:", 1)[1].split()[0])
                break
        assert port, "serve never said where it listens"
        _listening_workers(proc.pid, port)
        assert httpx.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.skipif(not serve.balanced(), reason="the kernel spreads connections over SO_REUSEPORT sockets on Linux")
def test_a_worker_that_dies_is_replaced_by_one_listening_on_a_socket_of_its_own(redis_url: str, tmp_path: Path):
    port = free_port()
    process = _start("--workers", "2", "--state", redis_url, "--data-dir", str(tmp_path / "data"), port=port)
    try:
        workers = _listening_workers(process.proc.pid, port)
        os.kill(workers[0], signal.SIGKILL)
        _listening_workers(process.proc.pid, port, but=workers[0])
        assert len(_sockets_on(port)["listening"]) == 2  # the dead worker's socket is gone, the new one its own
        for _ in range(20):  # new connections, spread over both: every one answered
            assert httpx.get(f"{process.url}/_emulator/health", timeout=10).status_code == 200
    finally:
        _stop(process)


def test_a_second_emulator_is_refused_the_port_its_workers_serve(redis_url: str, tmp_path: Path):
    """Workers listening with SO_REUSEPORT would let another emulator's workers bind the same port and take half its
    connections: a second ``serve --workers`` on that port is refused, as any other server on it would be."""
    port = free_port()
    flags = ("--workers", "2", "--state", redis_url, "--data-dir", str(tmp_path / "data"))
    first = _start(*flags, port=port)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "emulator", "serve", "--host", "127.0.0.1", "--port", str(port), *flags],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1, second.stderr
        assert "already served by another process" in second.stderr or "in use" in second.stderr, second.stderr
        assert httpx.get(f"{first.url}/_emulator/health", timeout=10).status_code == 200
    finally:
        _stop(first)


async def test_fault_rules_and_their_remaining_count_are_shared(pair):
    first, second = pair
    with ControlClient(first.url) as control:
        rule = control.add_fault(
            "status", provider="posteverywhere", operation="listMedia", status=503, times=3, retry_after=2
        )
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(
            *(http.get(f"{(first, second)[n % 2].url}{PE}/media", headers=AUTH) for n in range(10))
        )
        statuses = [r.status_code for r in answers]
        assert statuses.count(503) == 3 and statuses.count(200) == 7, statuses  # `times` exact over both
        with ControlClient(second.url) as control:
            (listed,) = control.faults()
            assert listed["id"] == rule["id"] and listed["remaining"] == 0
            control.clear_faults()
        with ControlClient(first.url) as control:
            assert control.faults() == []


async def test_a_fault_set_on_one_process_answers_first_on_the_other_and_counts_against_no_limit(pair):
    """The other process reads the shared state and takes the request's limits in one round trip (Sync.refresh):
    a rule it has not seen yet must still answer before the limiter, as with one process."""
    first, second = pair
    async with httpx.AsyncClient(timeout=30) as http:
        warm = await http.get(f"{second.url}{PE}/media", headers=AUTH)  # the other process knows the key and rules
        assert warm.status_code == 200 and warm.headers["x-ratelimit-remaining"] == "19"
        with ControlClient(first.url) as control:
            control.add_fault("status", provider="posteverywhere", operation="listMedia", status=503, times=1)
        faulted = await http.get(f"{second.url}{PE}/media", headers=AUTH)
        assert faulted.status_code == 503
        after = await http.get(f"{second.url}{PE}/media", headers=AUTH)
        assert after.status_code == 200 and after.headers["x-ratelimit-remaining"] == "18"  # the 503 took nothing


async def test_keys_created_and_revoked_on_one_process_hold_on_the_other(pair):
    first, second = pair
    with ControlClient(first.url) as control:
        created = control.create_key("posteverywhere", scopes=["media:read"])
    auth = {"Authorization": f"Bearer {created['key']}"}
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(f"{second.url}{PE}/media", headers=auth)).status_code == 200
        refused = await _new_upload(http, second, "a.mp4", "video/mp4", len(MP4), headers=auth)
        assert refused.status_code == 401 and "scope" in refused.json()["error"]["message"]  # its scopes hold there
        with ControlClient(second.url) as control:
            assert [k["id"] for k in control.keys()] == [created["id"]]
            control.revoke_key("posteverywhere", created["key"])
        revoked = await http.get(f"{first.url}{PE}/media", headers=auth)
        assert revoked.status_code == 401


async def test_the_journal_of_any_process_lists_what_every_process_served(pair):
    first, second = pair
    async with httpx.AsyncClient(timeout=30) as http:
        for n in range(6):
            await http.get(f"{(first, second)[n % 2].url}{PE}/media", headers=AUTH, params={"n": str(n)})
        with ControlClient(second.url) as control:
            entries = control.journal(provider="posteverywhere")
        assert [e.query for e in entries] == [f"n={n}" for n in range(6)]
        assert all(e.operation == "listMedia" and e.status == 200 for e in entries)
        pages, cursor = [], None
        while True:  # the paged answer keeps its shape and its cursor works across the shared journal
            answer = (
                await http.get(
                    f"{first.url}/_emulator/journal", params={"limit": "4", **({"cursor": cursor} if cursor else {})}
                )
            ).json()
            assert set(answer) == {"entries", "next_cursor", "has_more"}
            pages.append([e["query"] for e in answer["entries"]])
            if not answer["has_more"]:
                break
            cursor = answer["next_cursor"]
        assert [q for page in pages for q in page] == [f"n={n}" for n in range(6)] and len(pages) == 2
        assert (await http.delete(f"{first.url}/_emulator/journal")).status_code in (200, 204)
        with ControlClient(second.url) as control:
            assert control.journal() == []


def test_the_compose_file_shows_two_replicas_on_one_redis_and_one_volume():
    import yaml

    compose = yaml.safe_load((Path(__file__).parent.parent / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    replicas = [services["emulator-1"], services["emulator-2"]]
    states = {r["environment"]["UPLOAD_EMULATOR_STATE"] for r in replicas}
    assert states == {"redis://redis:6379/0"} and all(r["volumes"] == ["scaled-data:/data"] for r in replicas)
    assert all(r["depends_on"]["redis"]["condition"] == "service_healthy" for r in replicas)
    assert "--appendonly" in services["redis"]["command"] and "scaled-data" in compose["volumes"]
    assert {p for r in replicas for p in r["ports"]} == {"8081:8080", "8082:8080"}
    assert all(s.get("profiles") == ["scaled"] for name, s in services.items() if name not in ("emulator", "app"))


async def test_a_hundred_concurrent_uploads_over_both_processes_keep_every_byte_and_etag(pair):
    first, second = pair
    with ControlClient(first.url) as control:  # a key of its own limits: the pair's 20 a minute are not enough
        key = control.create_key("posteverywhere", rate_limits={"minute": 1000})["key"]
    auth = {"Authorization": f"Bearer {key}"}

    async def one(http: httpx.AsyncClient, n: int) -> None:
        start, other = (first, second) if n % 2 else (second, first)
        payload = MP4 + os.urandom(1000 + n * 37)
        started = await _new_upload(http, start, f"v{n}.mp4", "video/mp4", len(payload), headers=auth)
        assert started.status_code == 201, started.text
        data = started.json()["data"]
        put = await http.put(
            _on(data["upload_url"], other.url), content=payload, headers=data["upload_method"]["headers"]
        )
        assert put.status_code == 200 and put.headers["etag"] == f'"{hashlib.md5(payload).hexdigest()}"'
        done = await http.post(f"{start.url}{PE}/media/{data['media_id']}/complete", headers=auth)
        assert done.status_code == 200 and done.json()["data"]["size"] == len(payload), done.text
        seen = await http.get(f"{other.url}{PE}/media/{data['media_id']}", headers=auth)
        served = await http.get(_on(seen.json()["data"]["url"], other.url))
        assert served.status_code == 200 and served.content == payload

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as http:
        await asyncio.gather(*(one(http, n) for n in range(100)))


async def test_two_simultaneous_completes_of_one_upload_on_two_processes_one_wins_one_is_409(pair):
    from tests.test_autoposting_flow import MIB, complete, get_clip, sdk_parts, upload, video

    first, second = pair
    for attempt in range(3):  # both reading before either writes is the race this proves; any order must hold
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=60) as one,
            httpx.AsyncClient(base_url=second.url, timeout=60) as other,
        ):
            source = video(6 * MIB, seed=attempt)
            clip, etags = await upload(one, source, [5 * MIB, 1 * MIB])
            answers = await asyncio.gather(
                complete(one, clip, sdk_parts(etags)), complete(other, clip, sdk_parts(etags))
            )
            assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
            loser = next(r for r in answers if r.status_code == 409)
            assert loser.json()["success"] is False  # Autoposting's own envelope
            stored = await get_clip(other, clip["clipId"])  # the winner's completion, as every process sees it
            assert stored.status_code == 200 and stored.json()["data"]["status"] in ("processing", "ready")


async def test_parts_of_one_upload_sent_in_parallel_to_both_processes_are_all_kept(pair):
    from tests.test_autoposting_flow import MIB, complete, get_clip, init, presign, put_part, sdk_parts, split, video

    first, second = pair
    sizes = [5 * MIB, 5 * MIB, 5 * MIB, 1 * MIB]
    source = video(sum(sizes), seed=11)
    async with httpx.AsyncClient(base_url=first.url, timeout=60) as one:
        clip = await init(one, len(source))
        urls = await presign(one, clip, [1, 2, 3, 4])
        # parts 1 and 3 to the first process, 2 and 4 to the second, all at once: each adds its part to the one
        # upload record, and none may be lost (the changes are merged, not overwritten)
        etags = await asyncio.gather(
            *(
                put_part(one, urls[n] if n % 2 else _on(urls[n], second.url), chunk)
                for n, chunk in enumerate(split(source, sizes), start=1)
            )
        )
        done = await complete(one, clip, sdk_parts(list(etags)))
        assert done.status_code == 200, done.text
        view = (await get_clip(one, clip["clipId"])).json()["data"]
        assert view["status"] == "ready"
        served = await one.get(_on(view["url"], second.url))  # the joined object, read on the other process
        assert served.status_code == 200 and served.content == source


async def test_the_shared_journal_holds_no_signature_in_redis(pair, redis_url):
    """Body previews are redacted before an entry is written to Redis, not only when it is read back."""
    import redis

    first, _ = pair
    async with httpx.AsyncClient(timeout=30) as http:
        r = await _new_upload(http, first, "a.png", "image/png", 100)
        assert r.status_code == 201, r.text
    signature = r.json()["data"]["upload_url"].split("X-Emulator-Signature=")[1].split("&")[0]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:  # every string and sorted-set member the emulator keeps in Redis (the journal is a sorted set)
        values: list[str] = []
        for name in client.keys("*"):
            kind = client.type(name)
            if kind == "string":
                values.append(str(client.get(name) or ""))
            elif kind == "zset":
                values += [str(member) for member in client.zrange(name, 0, -1)]
        stored = "\n".join(values)
    finally:
        client.close()
    assert "X-Emulator-Signature=REDACTED" in stored  # the entry is there, its preview redacted
    assert signature not in stored


async def test_a_journal_entry_is_in_redis_before_the_client_has_the_last_byte_of_its_answer(redis_url):
    """A client that has its answer and asks any other process for the journal finds the entry: it is written
    before the response's last bytes leave (the check runs at that moment, from the ASGI ``send`` the server gets)."""
    from emulator.app import create_app
    from emulator.settings import Settings

    app = create_app(Settings(state=redis_url))
    shared = app.state.runtime.journal  # SharedJournal.query reads Redis only, as another process would
    found_at_last_byte: list[list[str]] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            found_at_last_byte.append([e.query for e in shared.query(provider="posteverywhere")])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"{PE}/media",
        "raw_path": f"{PE}/media".encode(),
        "query_string": b"n=1",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", AUTH["Authorization"].encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    try:
        await app(scope, receive, send)
    finally:
        app.state.runtime.close()
    assert found_at_last_byte == [["n=1"]]


def test_a_record_held_across_a_fresher_read_never_overwrites_another_process_change(redis_url):
    """A handler holds a record across an await; meanwhile another request of its process reads the record afresh
    (another process changed it). Putting the held object back must not silently drop that change: it is
    compared with the text the object came from, and merged (or refused), never written over it blindly."""
    from emulator.core.shared import RedisStore, connect
    from emulator.providers.autoposting import Upload

    mine, theirs = RedisStore(connect(redis_url)), RedisStore(connect(redis_url))
    try:
        mine.put("t:uploads", "u1", Upload("u1", "c1", "tenant", max_part_size=5))
        held: Any = mine.get("t:uploads", "u1")  # a handler holds this object across an await ...
        changed: Any = theirs.get("t:uploads", "u1")
        changed.max_part_size = 7
        theirs.put("t:uploads", "u1", changed)  # ... another process changes the record ...
        fresh: Any = mine.get("t:uploads", "u1")  # ... and another request here reads it afresh
        assert fresh.max_part_size == 7
        held.state = "completed"
        mine.put("t:uploads", "u1", held)
        stored: Any = RedisStore(connect(redis_url)).get("t:uploads", "u1")
        assert (stored.state, stored.max_part_size) == ("completed", 7)  # both changes kept
    finally:
        mine.close()
        theirs.close()


def test_a_process_holds_a_bounded_number_of_live_records_and_another_process_deletes_stay_safe(redis_url, monkeypatch):
    """Records another process deletes are never read here again, so this process's live copies are bounded
    (``RedisStore.LIVE``, the longest held go first): before, every record it had ever seen stayed in memory. A
    record dropped from the cache while a handler holds it is still put back compare-and-set."""
    from emulator.core.shared import RedisStore, connect
    from emulator.providers.autoposting import Upload

    monkeypatch.setattr(RedisStore, "LIVE", 50)
    mine, theirs = RedisStore(connect(redis_url)), RedisStore(connect(redis_url))
    try:
        held: Any = None
        for n in range(200):
            mine.put("t:uploads", f"u{n}", Upload(f"u{n}", "c1", "tenant", max_part_size=5))
            record: Any = mine.get("t:uploads", f"u{n}")
            held = held or record  # the first, held as a handler would across an await
            if n % 2:
                theirs.delete("t:uploads", f"u{n}")  # half deleted by the other process
        assert len(mine._live) == 50
        assert [key[1] for key in mine._live][-1] == "u199"  # the newest stay
        changed: Any = theirs.get("t:uploads", "u0")
        changed.max_part_size = 7
        theirs.put("t:uploads", "u0", changed)
        held.state = "completed"  # dropped from the cache long ago, still compared with the text it came from
        mine.put("t:uploads", "u0", held)
        stored: Any = RedisStore(connect(redis_url)).get("t:uploads", "u0")
        assert (stored.state, stored.max_part_size) == ("completed", 7)  # merged, not written over
        assert len(mine.items("t:uploads")) == 100 and len(mine._live) == 50
    finally:
        mine.close()
        theirs.close()


def test_the_first_parts_of_an_upload_stored_by_two_processes_at_once_are_merged():
    """The race behind the old intermittent 409 on parallel parts: both processes read the upload while it had no
    parts (an empty mapping, stored as ``{}``, not in the integer-keyed form) and each added one. The merge must keep
    both parts, not take the two forms of the mapping for a conflict."""
    from pathlib import Path

    from emulator.core import records
    from emulator.core.shared import merge
    from emulator.core.storage import Blob
    from emulator.providers.autoposting import Upload

    def part(number: int) -> Blob:
        return Blob(f"p{number}", Path(f"/data/p{number}"), 5, f"{number:032x}", "application/octet-stream")

    base = Upload("u1", "c1", "tenant", max_part_size=5)
    ours, theirs = (
        Upload("u1", "c1", "tenant", 5, parts={1: part(1)}),
        Upload("u1", "c1", "tenant", 5, parts={2: part(2)}),
    )
    merged = merge(records.dumps(base), records.dumps(ours), records.dumps(theirs))
    assert merged is not None
    assert records.loads(merged).parts == {1: part(1), 2: part(2)}
    # and the same when one side's change empties the mapping (a completion takes the parts): still a conflict
    done = Upload("u1", "c1", "tenant", 5, state="completed")
    with_two = Upload("u1", "c1", "tenant", 5, parts={1: part(1), 2: part(2)})
    assert (
        merge(
            records.dumps(with_two),
            records.dumps(done),
            records.dumps(Upload("u1", "c1", "tenant", 5, parts={1: part(1), 2: part(2), 3: part(3)})),
        )
        is None
    )
