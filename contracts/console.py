"""``upload-emulator contract``: the run with rich progress, the summary table, and the JUnit / Markdown files."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from contracts.report import summary_table, write_junit, write_markdown
from contracts.results import RunResult
from contracts.runner import Options, run


def run_with_progress(
    options: Options, console: Console, junit: Path | None = None, report: Path | None = None
) -> RunResult:
    """Run with a live line per provider, print the summary, write the files; the caller decides the exit code."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[provider]}[/bold]"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        # the refresh thread renders the whole table each time, even when nothing shows it (CI logs, a pipe):
        # 10 times a second that was 3 % of a run's CPU; a pipe gets the final state when the bar stops anyway
        auto_refresh=console.is_terminal,
        refresh_per_second=4,
    ) as bar:
        # a provider's clock starts when its first suite does: with workers, some wait for a free one
        tasks = {name: bar.add_task("waiting", provider=name, total=None, start=False) for name in options.providers}
        totals: dict[str, dict[str, int]] = {name: {} for name in options.providers}
        started: set[str] = set()

        def progress(provider: str, suite: str, event: str, count: int) -> None:
            if event == "start" and provider not in started:
                started.add(provider)
                bar.start_task(tasks[provider])
            if event in ("cases", "done"):
                totals[provider][suite] = count
            done = ", ".join(f"{s} {n}" for s, n in totals[provider].items())
            current = "" if event == "done" else f" · {suite} running"
            bar.update(tasks[provider], description=f"{done or 'starting'}{current} cases")
            if event == "done" and suite == options.suites[-1]:
                bar.update(tasks[provider], total=1, completed=1)

        result = run(options, progress)
    console.print(summary_table(result))
    for note in result.notes:
        console.print(f"note: {note}")
    for finding in result.findings:
        console.print(
            f"[red]FAIL[/red] {finding.provider} {finding.suite} [bold]{finding.check}[/bold] "
            f"{finding.operation}: {finding.title}"
        )
    if junit is not None:
        write_junit(result, junit)
        console.print(f"JUnit XML: {junit}")
    if report is not None:
        write_markdown(result, report)
        console.print(f"Markdown report: {report}")
    verdict = "[red]failed[/red]" if result.failed else "[green]passed[/green]"
    # one line, however narrow the console: CI logs and bench/suites.py read the verdict from the last line
    console.print(
        f"contracts {verdict}: {len(result.findings)} failure(s) in {result.seconds:.1f} s ({result.size()})",
        soft_wrap=True,
    )
    return result
