"""The benchmark harness's pure parts (bench/), checked without running a benchmark: no servers, no timing.

wrk output parsing, the large-PNG builder (its bytes go through the emulator's own image upload and sniffing),
the Prism copy of the spec, the results table, the chart of its ratios, the contract suite's counts (JUnit XML) and
the profile reader.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import struct
import zlib

import pytest

from bench import chart, png, profiling, report, run, scale, suites, wrk
from bench import client as upload_client
from bench.peers import prism_spec
from emulator.core.media import sniff_file
from tests.helpers import AUTH, PE

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:8080/posteverywhere/api/v1/media/upload
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.91ms  404.20us  12.43ms   91.23%
    Req/Sec     5.53k   211.31     5.80k    82.00%
  Latency Distribution
     50%    2.84ms
     75%    2.98ms
     90%    3.21ms
     99%  850.00us
  27515 requests in 5.00s, 24.51MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   5502.41
Transfer/sec:      4.90MB
"""


def test_wrk_output_is_parsed_with_units_and_error_counts():
    result = wrk.parse(WRK_OUTPUT)
    assert result.requests_per_s == 5502.41
    assert result.p50_ms == pytest.approx(2.84)
    assert result.p99_ms == pytest.approx(0.85)
    assert (result.requests, result.non_2xx, result.socket_errors) == (27515, 7, 3)
    assert not result.clean


def test_wrk_output_without_errors_is_clean_and_seconds_are_converted():
    text = WRK_OUTPUT.replace("     99%  850.00us", "     99%    1.20s").replace(
        "  Socket errors: connect 0, read 1, write 0, timeout 2\n  Non-2xx or 3xx responses: 7\n", ""
    )
    result = wrk.parse(text)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.clean


def test_wrk_output_without_latency_distribution_is_refused():
    with pytest.raises(ValueError):
        wrk.parse("Requests/sec: 10.0\n")


def test_wrk_script_carries_the_json_body_verbatim():
    script = wrk.lua_script("POST", {"Content-Type": "application/json"}, '{"a":"b\\"c"}')
    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = [====[{"a":"b\\"c"}]====]' in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == png.SIGNATURE
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        out.append((kind, body))
        pos += 12 + length
    return out


@pytest.mark.parametrize(("width", "height"), [(1, 1), (7, 5), (300, 900)])
def test_png_is_well_formed_and_exactly_the_predicted_size(width, height):
    buf = io.BytesIO()
    written = png.write_png(buf, width, height, seed=3)
    data = buf.getvalue()
    assert written == len(data) == png.size_of(width, height)
    chunks = _chunks(data)
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    assert struct.unpack(">II", chunks[0][1][:8]) == (width, height)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)
    assert all(raw[row * (1 + 3 * width)] == 0 for row in range(height))  # filter byte "none" on every row


def test_png_height_fits_the_twenty_mib_image_limit():
    limit = 20 * 1024 * 1024
    height = png.height_for(limit)
    assert png.size_of(2048, height) <= limit < png.size_of(2048, height + 1)


def test_png_is_sniffed_as_png_with_its_dimensions(tmp_path):
    path = tmp_path / "noise.png"
    with path.open("wb") as fh:
        png.write_png(fh, 640, 480)
    sniffed = sniff_file(path)
    assert (sniffed.mime, sniffed.width, sniffed.height) == ("image/png", 640, 480)


@pytest.mark.anyio
async def test_png_goes_through_the_emulators_image_upload_with_the_benchs_multipart_framing(client):
    buf = io.BytesIO()
    png.write_png(buf, 320, 200, seed=1)
    data = buf.getvalue()
    r = await client.post(
        f"{PE}/media/upload",
        headers=AUTH,
        json={"filename": "noise.png", "content_type": "image/png", "size": len(data)},
    )
    media_id, url = r.json()["data"]["media_id"], r.json()["data"]["upload_url"]
    content_type, before, after = upload_client.multipart([], "file", "noise.png", "image/png")
    assert content_type.startswith("multipart/form-data; boundary=")
    r = await client.post(url, content=before + data + after, headers={"Content-Type": content_type})
    assert r.status_code == 200 and r.json()["success"] is True
    r = await client.post(f"{PE}/media/{media_id}/complete", headers=AUTH)
    assert r.status_code == 200
    assert (r.json()["data"]["width"], r.json()["data"]["height"]) == (320, 200)


def test_upload_client_refuses_anything_but_loopback():
    with pytest.raises(ValueError):
        upload_client.request("http://example.com/")
    with pytest.raises(ValueError):
        upload_client.request("https://127.0.0.1/")


def test_prism_copy_serves_the_spec_paths_under_the_servers_base_path():
    spec = {
        "openapi": "3.1.0",
        "servers": [{"url": "https://app.posteverywhere.ai/api"}],
        "paths": {"/v1/media/upload": {"post": {}}, "/v1/posts": {"post": {}}},
    }
    copy = prism_spec(spec)
    assert list(copy["paths"]) == ["/api/v1/media/upload", "/api/v1/posts"]
    assert copy["servers"] == [{"url": "/"}]
    assert spec["servers"] == [{"url": "https://app.posteverywhere.ai/api"}]  # the original is untouched


def test_suite_command_is_the_contract_command_or_the_providers_test_files():
    contract = suites.command("segmentflow", contract=True)
    assert contract[-3:] == ["contract", "--provider", "segmentflow"]
    fallback = suites.command("posteverywhere", contract=False)
    assert fallback[1:3] == ["-m", "pytest"]
    assert fallback[-1].startswith("tests/test_posteverywhere_") and all(
        "posteverywhere" in part for part in fallback if part.startswith("tests/")
    )


def _results() -> dict:
    wrk_trial = {
        "requests_per_s": 9000.0,
        "p50_ms": 1.5,
        "p99_ms": 3.0,
        "requests": 45000,
        "non_2xx": 0,
        "socket_errors": 0,
    }
    return {
        "json": {
            "emulator": {"16": [wrk_trial] * 3},
            "prism": {"16": [dict(wrk_trial, requests_per_s=2000.0)] * 3},
            "prism-silent": {"16": [dict(wrk_trial, requests_per_s=5000.0)] * 3},
        },
        "ceilings": {"md5": [700.0, 750.0, 760.0], "write": [400.0, 500.0, 450.0]},
        "uploads": {
            "500MiB": {"emulator": [380.0, 400.0, 390.0], "moto": [150.0, 160.0, 170.0], "loopback": [2000.0] * 3}
        },
        "rss": {"emulator-idle": 60.0, "emulator-500MiB": 70.0, "moto-500MiB": 1080.0},
        "cold_start": {"emulator": [0.6, 0.4, 0.45], "prism": [1.2] * 3, "moto": [0.5] * 3},
        "suites": {"kind": "pytest", "runs": [{"provider": "xenonflare", "seconds": 12.0, "returncode": 0}]},
        "started": "2026-12-02 11:00 UTC",
        "machine": {"git": "abc1234"},
    }


def _results_round_two() -> dict:
    """A run with issue 22's figures: forms one and 20 at once, 1 MiB PUTs, the whole contract suite."""
    results = _results()
    results["uploads"]["1MiBx200"] = {
        "emulator": [300.0, 310.0, 320.0],
        "moto": [200.0] * 3,
        "loopback": [1000.0] * 3,
        "emulator-cpu": [1.0] * 3,
        "moto-cpu": [0.5] * 3,
    }
    results["multipart"] = {"emulator": [350.0, 360.0, 370.0], "moto": [170.0, 180.0, 190.0]}
    results["concurrent"] = {
        "form": {"emulator": [300.0], "moto": [160.0], "emulator-cpu": [1.5], "moto-cpu": [1.0]},
        "put": {"emulator": [250.0], "moto": [200.0]},
    }
    results["suites"] = {
        "kind": "contract-all",
        "seconds": 55.5,
        "returncode": 0,
        "cases": 4321,
        "testcases": 90,
        "checks": 54321,
        "providers": [
            {"provider": "segmentflow", "seconds": 20.0, "testcases": 25, "checks": 7000, "failures": 0},
            {"provider": "xenonflare", "seconds": 30.0, "testcases": 65, "checks": 47321, "failures": 1},
        ],
    }
    return results


def test_report_computes_same_run_ratios_and_verdicts():
    rows = {(r.section, r.figure): r for r in report.rows(_results())}
    prism = rows[("1 JSON `POST /v1/media/upload`", "c=16 vs Prism (default, log to file)")]
    assert (prism.ratio, prism.met) == ("4.50×", "yes")
    silent = rows[("1 JSON `POST /v1/media/upload`", "c=16 vs Prism `-v silent`")]
    assert (silent.ratio, silent.met) == ("1.80×", "**no**")
    moto = rows[("2 presigned PUT", "PUT 500 MiB vs moto")]
    assert (moto.ratio, moto.met) == ("2.44×", "**no**")
    ceiling = rows[("2 presigned PUT", "PUT 500 MiB vs ceiling (min of MD5, write)")]
    assert (ceiling.peer, ceiling.ratio, ceiling.met) == ("450 MB/s", "87%", "yes")
    results = _results()
    results["ceilings"]["md5-then-write"] = [300.0]
    ceiling = next(r for r in report.rows(results) if r.figure == "PUT 500 MiB vs ceiling (min of MD5, write)")
    assert ceiling.peer == "450 MB/s (MD5 then write in sequence: 300)" and ceiling.ratio == "87%; 130% of sequential"
    cold = rows[("5 cold start", "spawn → first 2xx, vs Prism")]
    assert (cold.emulator, cold.met) == ("0.45 s", "yes")
    table = report.markdown(report.rows(_results()))
    assert table.startswith("| figure | measure |") and table.count("\n") == len(report.rows(_results())) + 2


def test_profile_reader_counts_self_and_inclusive_time_per_function():
    raw = (
        "run (uvicorn/server.py:10);handle (emulator/core/provider.py:50);dumps (orjson.py:1) 30\n"
        "run (uvicorn/server.py:10);handle (emulator/core/provider.py:61) 70\n"
    )
    stacks = profiling.parse(raw)
    self_time = {r.frame: r.samples for r in profiling.top(stacks)}
    assert self_time == {"handle (emulator/core/provider.py)": 70, "dumps (orjson.py)": 30}
    inclusive = profiling.top(stacks, inclusive=True, only="emulator/")
    assert [(r.frame, r.share) for r in inclusive] == [("handle (emulator/core/provider.py)", 1.0)]


def test_profile_reader_folds_unsymbolised_native_frames_by_library():
    assert profiling.fold("0x7f5eed240d55 (libcrypto.so.3)") == "[native] (libcrypto.so.3)"
    assert profiling.fold("write (libc.so.6)") == "write (libc.so.6)"
    assert profiling.fold("on_body (/v/lib/python3.11/site-packages/uvicorn/h.py:3)") == "on_body (uvicorn/h.py)"


def test_report_divides_rates_by_the_servers_cpu_use_in_the_same_trial():
    results = _results()
    results["json"]["emulator"]["16"] = [dict(t, server_cpu=0.9) for t in results["json"]["emulator"]["16"]]
    results["json"]["prism"]["16"] = [dict(t, server_cpu=1.2) for t in results["json"]["prism"]["16"]]
    row = next(r for r in report.rows(results) if r.figure == "c=16 vs Prism (default, log to file)")
    assert "10,000 req/CPU-s" in row.emulator and "1,667 req/CPU-s" in row.peer
    assert row.ratio == "4.50× (per CPU-s 6.00×)"
    assert report.per_cpu([100.0, 200.0], [0.5, 0.0]) is None  # a trial without a CPU figure: no per-CPU rate


def test_report_has_issue_22s_figures_with_their_targets():
    rows = {(r.section, r.figure): r for r in report.rows(_results_round_two())}
    small = rows[("2 presigned PUT", "PUT 1 MiB ×200, c=8 vs moto")]
    assert (small.ratio, small.target, small.met) == ("1.55× (per CPU-s 0.78×)", "≥ 1.5× (issue 22)", "yes")
    assert rows[("2 presigned PUT", "PUT 500 MiB vs moto")].target == "≥ 2.5× (issues 10, 22)"
    one = rows[("3 multipart image", "POST form, 20 MiB PNG vs moto presigned POST")]
    assert (one.ratio, one.target, one.met) == ("2.00×", "≥ 2× (issue 22)", "yes")
    many = rows[("3 multipart image", "POST form, 20 × 20 MiB at once vs moto presigned POST")]
    assert (many.ratio, many.met) == ("1.88× (per CPU-s 1.25×)", "**no**")
    assert "200 MB/CPU-s" in many.emulator and "160 MB/CPU-s" in many.peer
    put = rows[("2 presigned PUT", "PUT 20 × 20 MiB at once vs moto")]
    assert (put.ratio, put.target, put.met) == ("1.25×", "— (none set)", "—")
    only_rss = {"concurrent": _results_round_two()["concurrent"]}  # a run of `--only rss`: no ceilings, no PUT sizes
    assert [r.figure for r in report.upload_rows(only_rss) + report.multipart_rows(only_rss)] == [
        "PUT 20 × 20 MiB at once vs moto",
        "POST form, 20 × 20 MiB at once vs moto presigned POST",
    ]
    suite = [r for r in report.rows(_results_round_two()) if r.section == "6 contract suite"]
    assert (
        suite[0].figure
        == "`upload-emulator contract --provider all` (4,321 cases, 54,321 checks in 90 JUnit testcases)"
    )
    assert (suite[0].emulator, suite[0].target, suite[0].met) == ("55.5 s", "< 60 s (issue 22)", "yes")
    assert [(r.emulator, r.met) for r in suite[1:]] == [("20.0 s", "passed"), ("30.0 s", "failed")]
    slow = _results_round_two()
    slow["suites"].update(seconds=61.0, returncode=1)
    assert report.suite_rows(slow)[0].met == "**no**, **rc 1**"


def test_report_compares_the_form_with_moto_also_once_moto_has_computed_the_md5_it_defers():
    results = _results_round_two()
    results["multipart"].update({"moto+etag": [100.0, 120.0, 140.0], "moto+etag-cpu": [0.5, 0.5, 0.5]})
    rows = [r for r in report.multipart_rows(results) if r.figure.startswith("POST form, 20 MiB PNG vs moto")]
    assert [r.figure for r in rows] == [
        "POST form, 20 MiB PNG vs moto presigned POST",
        "POST form, 20 MiB PNG vs moto presigned POST + its first HEAD (the MD5)",
    ]
    assert (rows[1].ratio, rows[1].target, rows[1].met) == ("3.00×", "— (none set)", "—")
    assert rows[1].peer == "120 MB/s · 240 MB/CPU-s"
    assert [b.label for b in chart.bars(results)] == [b.label for b in chart.bars(_results_round_two())]  # no bar

    # since the emulator too hashes a form's file at its first read, its HEADs are timed and compared as well
    results["multipart"].update({"emulator+etag": [250.0, 300.0, 350.0], "emulator+etag-cpu": [1.0, 1.0, 1.0]})
    rows = [r for r in report.multipart_rows(results) if "first HEAD" in r.figure]
    assert [r.figure for r in rows] == [
        "POST form, 20 MiB PNG + its first HEAD (the MD5) vs moto presigned POST + its first HEAD"
    ]
    assert (rows[0].emulator, rows[0].ratio) == ("300 MB/s · 300 MB/CPU-s", "2.50× (per CPU-s 1.25×)")


def test_chart_bars_are_the_rows_with_a_ratio_and_a_ratio_target():
    got = [(b.label, round(b.ratio, 2), b.target, b.met, b.cpu_ratio) for b in chart.bars(_results_round_two())]
    assert got == [
        ("JSON: c=16 vs Prism (default, log to file)", 4.5, 3.0, True, None),
        ("JSON: c=16 vs Prism -v silent", 1.8, 2.0, False, None),
        ("presigned PUT: PUT 1 MiB ×200, c=8 vs moto", 1.55, 1.5, True, pytest.approx(0.775)),
        (
            "presigned PUT: PUT 1 MiB ×200, c=8 vs ceiling (min of MD5, write)",
            0.69,
            0.8,
            False,
            pytest.approx(0.689, abs=1e-3),
        ),
        ("presigned PUT: PUT 500 MiB vs moto", 2.44, 2.5, False, None),
        ("presigned PUT: PUT 500 MiB vs ceiling (min of MD5, write)", 0.87, 0.8, True, None),
        ("multipart image: POST form, 20 MiB PNG vs moto presigned POST", 2.0, 2.0, True, None),
        ("multipart image: POST form, 20 × 20 MiB at once vs moto presigned POST", 1.88, 2.0, False, 1.25),
    ]  # no bar for rows without a peer ratio target: RSS and cold start (absolute targets), the contract suite


def _png_size(data: bytes) -> tuple[int, int]:
    chunks = _chunks(data)
    assert chunks[-1] == (b"IEND", b"")
    assert not [kind for kind, body in chunks if kind in (b"tEXt", b"iTXt", b"zTXt", b"tIME")], "metadata in the PNG"
    return struct.unpack(">II", chunks[0][1][:8])


def _matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        reason = "matplotlib is not installed (pip install -r bench/requirements.txt): the chart is not drawn"
        if os.environ.get("CI"):
            pytest.fail(reason + "; the test extra installs it in CI")
        pytest.skip(reason)


def test_chart_is_a_valid_png_with_the_same_bytes_for_the_same_results(tmp_path):
    _matplotlib()
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    assert chart.draw(_results_round_two(), first) == 8
    chart.draw(_results_round_two(), second)
    data = first.read_bytes()
    assert data == second.read_bytes()
    width, height = _png_size(data)
    assert width == chart.WIDTH_IN * chart.DPI and 300 < height < 800
    fewer = tmp_path / "c.png"
    assert chart.draw(_results(), fewer) == 4  # one bar fewer per row: a shorter picture
    assert _png_size(fewer.read_bytes())[1] < height


def _saved_run() -> dict:
    """A whole results file as run.py saves it: the figures plus the machine and versions lines."""
    results = _results_round_two()
    results["machine"] = {
        "nproc": 2,
        "cpu": "CPU",
        "mem_gib": 24,
        "kernel": "6",
        "load_before": "0",
        "load_after": "0",
        "git": "abc",
    }
    results["versions"] = dict.fromkeys(
        ("python", "uvicorn", "uvloop", "httptools", "starlette", "orjson", "prism", "node", "moto", "wrk"), "1"
    )
    results["elapsed_s"] = 60.0
    return results


def test_write_readme_replaces_only_the_generated_block_and_shows_the_chart_above_the_table(tmp_path):
    _matplotlib()
    readme = tmp_path / "README.md"
    readme.write_text(f"# Bench\n\nintro\n\n{run.START}\nold table\n{run.END}\n\n## After\nkept\n")
    results = _saved_run()
    table = report.markdown(report.rows(results))
    run.write_readme(results, table, readme, tmp_path / "ratios.png")
    text = readme.read_text()
    assert text.startswith("# Bench\n\nintro\n\n") and text.endswith(f"{run.END}\n\n## After\nkept\n")
    assert "old table" not in text
    block = text.split(run.START)[1]
    assert block.index("](ratios.png)") < block.index("| figure | measure |")
    assert "(8 bars)" in block and _png_size((tmp_path / "ratios.png").read_bytes())
    run.write_readme(results, table, readme, tmp_path / "ratios.png")
    assert readme.read_text() == text  # a rewrite keeps the picture and changes nothing else


JUNIT = """<?xml version='1.0' encoding='utf-8'?>
<testsuites name="upload-emulator contracts" time="9.0">
  <testsuite name="contracts.segmentflow" tests="2" failures="1" errors="0" skipped="0" time="3.5">
    <testcase classname="contracts.segmentflow.flows" name="flow_status" time="0">
      <system-out>63 passed, 0 failed</system-out>
    </testcase>
    <testcase classname="contracts.segmentflow.schemathesis" name="not_a_server_error" time="0">
      <failure type="not_a_server_error" message="x">boom</failure>
      <system-out>460 passed, 2 failed</system-out>
    </testcase>
  </testsuite>
  <testsuite name="contracts.xenonflare" tests="1" failures="0" errors="0" skipped="1" time="5.25">
    <testcase classname="contracts.xenonflare.flows" name="flows" time="0"><skipped message="why"/></testcase>
  </testsuite>
</testsuites>
"""


def test_contract_counts_come_from_its_junit_xml_and_summary():
    assert suites.parse_junit(JUNIT) == [
        {"provider": "segmentflow", "seconds": 3.5, "testcases": 2, "checks": 525, "failures": 1},
        {"provider": "xenonflare", "seconds": 5.25, "testcases": 1, "checks": 0, "failures": 0},
    ]
    output = (
        "│ segmentflow │              │ cases: schemathesis 527, flows 6, documented 3 │        │ ok 4.0s │\n"
        "│ xenonflare │  │ cases: schemathesis 1000, flows 12 │  │ ok 9.0s │\n"
    )
    assert suites.parse_cases(output) == 527 + 6 + 3 + 1000 + 12
    assert suites.parse_cases("contracts passed: 0 failure(s) in 4.3 s") is None


def _scale_results() -> dict:
    def wrk_trial(rps: float) -> dict:
        return {"rps": rps, "p99_ms": 5.0, "clean": 1.0, "server_cpu": 0.9, "redis_cpu": 0.2, "wrk_cpu": 0.1}

    def upload(mb_s: float) -> dict:
        return {"mb_s": mb_s, "server_cpu": 1.2, "redis_cpu": 0.05, "client_cpu": 0.3}

    return {
        "started": "2026-12-02 11:00 UTC",
        "settings": {"seconds": 5.0, "trials": 3, "connections": 32},
        "machine": {"nproc": 2, "load_before": "0.10 0.20 0.30", "load_after": "1.00 0.50 0.40"},
        "json": {
            scale.BASE: [wrk_trial(4000.0)] * 3,
            scale.ONE: [wrk_trial(2000.0), wrk_trial(3000.0), wrk_trial(2600.0)],
            scale.TWO: [wrk_trial(3900.0)] * 3,
        },
        "uploads": {
            "put": {scale.BASE: [upload(200.0)], scale.ONE: [upload(100.0)], scale.TWO: [upload(160.0)]},
            "form": {scale.ONE: [upload(150.0), upload(120.0), upload(90.0)], scale.TWO: [upload(240.0)] * 3},
        },
    }


def test_scale_tables_compare_two_processes_with_one_for_json_and_uploads():
    text = scale.block(_scale_results())
    assert text.startswith("Run 2026-12-02 11:00 UTC: `python -m bench.scale --seconds 5 --trials 3 --connections 32`")
    assert "| redis, 1 process | 2,600 | 0.65x | 5.0 | 90% | 20% | 10% |" in text
    assert "Redis store on one process: 65.0% of the memory store (goal: at least 65 %: met)" in text
    assert "two processes: 1.500x one (goal: at least 1.5x: met)" in text
    short = _scale_results()
    short["json"]["redis, 2 processes"] = [dict(t, rps=t["rps"] * 0.997) for t in short["json"]["redis, 2 processes"]]
    assert "1.496x one (goal: at least 1.5x: **missed**)" in scale.block(short)  # judged unrounded
    # the cores' ceiling from the run's CPU per request: (0.9 + 0.2 + 0.1) / 3,900 s, two cores -> 6,500 req/s
    assert (
        "per request, two processes used 231 µs of emulator CPU, Redis 51 µs and wrk 26 µs, so at most 6,500 req/s "
        "= 2.50x one process (measured: 60% of that ceiling)" in text
    )
    assert "between 2,600 req/s (65 % of the memory store) and 4,333 req/s (the ceiling ÷ 1.5" in text
    assert "it served 2,600." in text
    slow = _scale_results()  # Redis at 1.5 cores: at most 3,120 req/s, so one process may serve at most 2,080
    slow["json"][scale.TWO] = [dict(t, redis_cpu=1.5) for t in slow["json"][scale.TWO]]
    assert "at least 2,600 req/s (65 % of the memory store) and at most 2,080 req/s (the ceiling ÷ 1.5): no rate" in (
        scale.block(slow)
    )
    assert "| PUT 1 MiB ×200, 8 at once | memory, 1 process | 200 | 2.00x | 120% | 5% | 30% |" in text
    assert "| form, 20 MiB PNG ×20 at once | redis, 1 process | 120 | 1.00x |" in text  # the median of 3 trials
    assert (
        "PUT 1 MiB ×200, 8 at once: two processes 1.60x one; form, 20 MiB PNG ×20 at once: two processes 2.00x one"
        in text
    )
    without = _scale_results()
    without["uploads"] = {}
    assert "| uploads |" not in scale.block(without)  # a run with --uploads ""


def test_scale_write_readme_replaces_only_its_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{scale.START}\nold\n{scale.END}\n\nexplanation kept\n")
    scale.write_readme(_scale_results(), readme)
    text = readme.read_text()
    assert text.startswith(f"intro\n\n{scale.START}\nRun 2026-12-02") and text.endswith(
        f"{scale.END}\n\nexplanation kept\n"
    )
    assert "old" not in text
    scale.write_readme(_scale_results(), readme)
    assert readme.read_text() == text


def test_the_bench_readme_shows_the_chart_inside_the_generated_block_and_it_exists():
    text = run.README.read_text()
    block = text.split(run.START)[1].split(run.END)[0]
    assert block.lstrip("\n").startswith("![") and "](ratios.png)" in block.split("\n\n")[0]
    assert block.index("](ratios.png)") < block.index("| figure | measure |")
    assert _png_size(run.CHART.read_bytes())[0] == chart.WIDTH_IN * chart.DPI
    assert text.count(scale.START) == 1 and text.index(scale.START) < text.index(scale.END)


def test_table_from_a_saved_run_writes_the_readme_block_and_the_chart(tmp_path, monkeypatch, capsys):
    _matplotlib()
    saved, readme, image = tmp_path / "results.json", tmp_path / "README.md", tmp_path / "ratios.png"
    saved.write_text(json.dumps(_saved_run()))
    readme.write_text(f"intro\n{run.START}\nold\n{run.END}\n")
    monkeypatch.setattr(run, "README", readme)
    monkeypatch.setattr(run, "CHART", image)
    assert run.main(["--table-from", str(saved), "--write-readme"]) == 0
    assert "| 3 multipart image | POST form, 20 × 20 MiB at once vs moto presigned POST |" in capsys.readouterr().out
    assert "](ratios.png)" in readme.read_text() and _png_size(image.read_bytes())


def test_scale_table_from_a_saved_run_writes_its_readme_block(tmp_path, monkeypatch, capsys):
    saved, readme = tmp_path / "scale.json", tmp_path / "README.md"
    saved.write_text(json.dumps(_scale_results()))
    readme.write_text(f"intro\n{scale.START}\nold\n{scale.END}\n")
    monkeypatch.setattr(scale, "README", readme)
    assert scale.main(["--table-from", str(saved), "--write-readme"]) == 0
    assert capsys.readouterr().out.strip() in readme.read_text()
