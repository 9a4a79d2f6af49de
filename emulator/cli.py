"""``upload-emulator``: serve the emulator, run the contract suite, check its specs."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from emulator.settings import ENV_PREFIX, Settings

app = typer.Typer(help="A faithful local stand-in for social-media upload APIs.", no_args_is_help=True,
                  add_completion=False)
specs_app = typer.Typer(help="Inspect and check the providers' specs.", no_args_is_help=True)
app.add_typer(specs_app, name="specs")
console = Console()


def _help(name: str) -> str:
    f = next(f for f in fields(Settings) if f.name == name)
    return f"{f.metadata['help']} (env: {ENV_PREFIX}{name.upper()})"


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help=_help("host"))] = None,
    port: Annotated[Optional[int], typer.Option(help=_help("port"))] = None,
    provider: Annotated[Optional[str], typer.Option(help=_help("provider"))] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help=_help("data_dir"))] = None,
    public_url: Annotated[Optional[str], typer.Option(help=_help("public_url"))] = None,
    strict_keys: Annotated[Optional[bool], typer.Option("--strict-keys", help=_help("strict_keys"))] = None,
    key: Annotated[Optional[list[str]], typer.Option(help=_help("keys"))] = None,
    rate_limit: Annotated[Optional[list[str]], typer.Option(help=_help("rate_limits"))] = None,
    strict: Annotated[Optional[bool], typer.Option("--strict", help=_help("strict"))] = None,
    strict_docs: Annotated[Optional[bool], typer.Option("--strict-docs", help=_help("strict_docs"))] = None,
    seed: Annotated[Optional[int], typer.Option(help=_help("seed"))] = None,
    video_processing_seconds: Annotated[Optional[float], typer.Option(help=_help("video_processing_seconds"))] = None,
    max_json_body: Annotated[Optional[int], typer.Option(help=_help("max_json_body"))] = None,
    admin_token: Annotated[Optional[str], typer.Option(help=_help("admin_token"))] = None,
    log_level: Annotated[Optional[str], typer.Option(help=_help("log_level"))] = None,
    head_timeout: Annotated[Optional[float], typer.Option(help=_help("head_timeout"))] = None,
    body_timeout: Annotated[Optional[float], typer.Option(help=_help("body_timeout"))] = None,
) -> None:
    """Run the emulator: every provider under its prefix, or one provider at the root with --provider."""
    import uvicorn

    from emulator.app import create_app
    from emulator.core.timeouts import head_timeout_protocol
    from emulator.providers import PROVIDERS

    overrides = dict(host=host, port=port, provider=provider, data_dir=data_dir, public_url=public_url,
                     strict_keys=strict_keys, strict=strict, strict_docs=strict_docs, seed=seed,
                     video_processing_seconds=video_processing_seconds,
                     max_json_body=max_json_body, admin_token=admin_token, log_level=log_level,
                     head_timeout=head_timeout, body_timeout=body_timeout)
    if key:
        overrides["keys"] = Settings.parse("keys", ",".join(key))
    if rate_limit:
        overrides["rate_limits"] = Settings.parse("rate_limits", ",".join(rate_limit))
    try:
        settings = Settings.from_env(**overrides)
        if settings.provider is not None and port is None and f"{ENV_PREFIX}PORT" not in __import__("os").environ:
            settings.port = 3001 if settings.provider == "segmentflow" else settings.port
        application = create_app(settings)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    origin = settings.public_url or f"http://{settings.host}:{settings.port}"
    # plain lines, never folded: the URLs and keys are meant to be copied
    console.print(f"[bold]upload-emulator on {origin}[/bold]", soft_wrap=True)
    for name, prov in PROVIDERS.items():
        if settings.provider not in (None, name):
            continue
        mount = "" if settings.provider else f"/{name}"
        base = f"{origin.rstrip('/')}{mount}{prov.specs.server_path}{prov.client_path}"
        console.print(f"  {prov.title}: {base}  (instead of {prov.real_base_url})  dev key: {prov.keys.example}",
                      soft_wrap=True, highlight=False)
    console.print(f"health: {origin.rstrip('/')}/_emulator/health · control plane: "
                  f"{origin.rstrip('/')}/_emulator/openapi.json"
                  + ("" if settings.admin_token else " (loopback only)"), soft_wrap=True)
    # SIGTERM drains: no new connections, requests in flight finish; a stalled body ends at body_timeout, and
    # anything still running a few seconds later is cancelled (a cancelled upload keeps nothing)
    drain = math.ceil(settings.body_timeout) + 5 if settings.body_timeout > 0 else None
    uvicorn.run(application, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, timeout_keep_alive=5, timeout_graceful_shutdown=drain,
                http=head_timeout_protocol(settings.head_timeout) or "auto")


@app.command()
def contract(
    provider: Annotated[str, typer.Option(help="all, or one provider")] = "all",
    base_url: Annotated[Optional[str], typer.Option(
        help="Test this server instead of starting an emulator: a running emulator (every provider under its "
             "prefix, or one at its root) or a real provider's origin (with --provider)")] = None,
    api_key: Annotated[Optional[list[str]], typer.Option(
        help="The key to use: KEY with one --provider, or PROVIDER=KEY (repeatable); default: dev keys")] = None,
    max_examples: Annotated[int, typer.Option(help="schemathesis examples per operation and phase")] = 60,
    flow_examples: Annotated[Optional[int], typer.Option(
        help="hypothesis examples per flow machine (default: half of --max-examples, at least 5)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for a reproducible run")] = None,
    junit: Annotated[Optional[Path], typer.Option(help="Write JUnit XML here")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write a Markdown report (failures with curl) here")] = None,
    allow_writes: Annotated[bool, typer.Option(
        "--allow-writes", help="Let a run against a real provider upload (an emulator is always a sandbox)")] = False,
    suite: Annotated[Optional[list[str]], typer.Option(
        help="Run only these suites: schemathesis, flows, documented (repeatable)")] = None,
    operation: Annotated[Optional[list[str]], typer.Option(
        help="Narrow the schemathesis suite to these operationIds (repeatable)")] = None,
) -> None:
    """Check that an emulator (or a real provider) honours the providers' contracts."""
    from contracts.console import run_with_progress
    from contracts.results import SUITES
    from contracts.runner import Options
    from contracts.target import TargetError
    from emulator.providers import PROVIDERS

    names = list(PROVIDERS) if provider == "all" else [provider]
    unknown = [n for n in names if n not in PROVIDERS] + [s for s in suite or () if s not in SUITES]
    if unknown:
        console.print(f"[red]error:[/red] unknown provider or suite {unknown[0]!r}; providers: "
                      f"{', '.join(PROVIDERS)}; suites: {', '.join(SUITES)}")
        raise typer.Exit(2)
    options = Options(providers=names, base_url=base_url, api_keys=api_key or [], max_examples=max_examples,
                      flow_examples=flow_examples, seed=seed, allow_writes=allow_writes,
                      suites=tuple(s for s in SUITES if s in (suite or SUITES)), operations=tuple(operation or ()))
    try:
        result = run_with_progress(options, console, junit=junit, report=report)
    except TargetError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    raise typer.Exit(1 if result.failed else 0)


@specs_app.command("check")
def specs_check() -> None:
    """Validate every effective spec and prove it only adds to the published one."""
    from emulator.core import specs

    failed = False
    for name in specs.available():
        try:
            problems = specs.load(name).check()
        except specs.SpecError as exc:
            problems = [str(exc)]
        status = "[green]ok[/green]" if not problems else f"[red]{len(problems)} problem(s)[/red]"
        console.print(f"{name}: {status}")
        for problem in problems:
            console.print(f"  - {problem}")
        failed = failed or bool(problems)
    raise typer.Exit(1 if failed else 0)


@specs_app.command("show")
def specs_show(provider: str, part: str = typer.Option("effective", help="published, inferred or effective")) -> None:
    """Print a provider's published, inferred or effective spec as JSON."""
    from emulator.core import specs

    if provider not in specs.available():
        console.print(f"[red]error:[/red] unknown provider {provider!r}; choose from {', '.join(specs.available())}")
        raise typer.Exit(2)
    loaded = specs.load(provider)
    sys.stdout.write(json.dumps(getattr(loaded, part), indent=2) + "\n")


def main() -> None:
    app()
