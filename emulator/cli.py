"""``upload-emulator``: serve the emulator, run the contract suite, chaos-test a client, check its specs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(help="A faithful local stand-in for social-media upload APIs.", no_args_is_help=True,
                  add_completion=False)
specs_app = typer.Typer(help="Inspect and check the providers' specs.", no_args_is_help=True)
app.add_typer(specs_app, name="specs")
console = Console()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def serve(ctx: typer.Context) -> None:
    """Run the emulator: every provider under its prefix, or one provider at the root with --provider.

    Flags: `upload-emulator serve --help` (one per setting, each with its UPLOAD_EMULATOR_* variable).
    """
    from emulator.serve import run

    run(ctx.args)  # argparse, from Settings: see emulator/serve.py for why not typer


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def chaos(ctx: typer.Context) -> None:
    """Run your own uploader under provider-faithful fault schedules and check what it did (docs/chaos.md).

    Flags: `upload-emulator chaos --help`.
    """
    from emulator.chaos.cli import run

    run(ctx.args)  # argparse, like serve; emulator.main calls it directly


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

