"""A run's result for people and for CI: a rich summary table, JUnit XML, and a Markdown report that lists every
failure with a curl command reproducing it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import JustifyMethod
from rich.table import Table

from contracts.openapi_suite import STATE_DEPENDENT
from contracts.results import Finding, ProviderResult, RunResult


def summary_table(result: RunResult) -> Table:
    table = Table(title=f"contract run against {result.target}", title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("provider", "left"),
        ("suite", "left"),
        ("check", "left"),
        ("passed", "right"),
        ("failed", "right"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for provider in result.providers:
        for (suite, check), tally in sorted(provider.tallies.items()):
            failed = f"[red]{tally.failed}[/red]" if tally.failed else "0"
            table.add_row(provider.provider, suite, check, str(tally.passed), failed)
        cases = ", ".join(f"{suite} {n}" for suite, n in provider.cases.items())
        status = "[red]FAILED[/red]" if provider.failed else "[green]ok[/green]"
        table.add_row(
            f"[bold]{provider.provider}[/bold]",
            "",
            f"cases: {cases}",
            "",
            f"{status} {sum(provider.seconds.values()):.1f}s",
            end_section=True,
        )
    return table


def _failure_text(findings: list[Finding]) -> str:
    return "\n\n".join(f"{f.title}: {f.message}\n{f.curl}" for f in findings)


def write_junit(result: RunResult, path: Path, *, name: str = "contracts") -> None:
    """One testsuite per provider, one testcase per suite and check; a failure element per failing check."""
    root = ET.Element("testsuites", name=f"upload-emulator {name}", time=f"{result.seconds:.3f}")
    for provider in result.providers:
        checks = sorted(provider.tallies.items())
        failures = sum(1 for _, tally in checks if tally.failed) + _unrecorded_failures(provider)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{name}.{provider.provider}",
            tests=str(len(checks)),
            failures=str(failures),
            errors="0",
            skipped=str(len(provider.skipped)),
            time=f"{sum(provider.seconds.values()):.3f}",
        )
        for (suite_name, check), tally in checks:
            case = ET.SubElement(
                suite, "testcase", classname=f"{name}.{provider.provider}.{suite_name}", name=check, time="0"
            )
            found = [f for f in provider.findings if f.suite == suite_name and f.check == check]
            if tally.failed or found:
                failure = ET.SubElement(
                    case,
                    "failure",
                    type=check,
                    message=f"{check} failed on {', '.join(sorted({f.operation for f in found}))}",
                )
                failure.text = _failure_text(found)
            ET.SubElement(case, "system-out").text = f"{tally.passed} passed, {tally.failed} failed"
        for suite_name, why in provider.skipped.items():
            case = ET.SubElement(
                suite, "testcase", classname=f"{name}.{provider.provider}.{suite_name}", name=suite_name, time="0"
            )
            ET.SubElement(case, "skipped", message=why)
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n", encoding="utf-8")


def _unrecorded_failures(provider: ProviderResult) -> int:
    """Findings whose check has no tally (an engine error, a run-wide check): still failures in the XML count."""
    tallied = set(provider.tallies)
    return len({(f.suite, f.check) for f in provider.findings} - tallied)


REPRODUCE = "Reproduce (`API_KEY` holds the provider key; `OTHER_API_KEY` a second one):"


def markdown(
    result: RunResult, *, heading: str = "Contract run", reproduce: str = REPRODUCE, state_dependent: bool = True
) -> str:
    lines = [f"# {heading} against {result.target}", ""]
    verdict = "**FAILED**" if result.failed else "**passed**"
    lines.append(
        f"{verdict}: {len(result.findings)} failure(s) in {result.seconds:.1f} s"
        + (f", seed {result.seed}" if result.seed is not None else "")
        + f". It ran {result.size()}."
    )
    lines += [""] + [f"- {note}" for note in result.notes] + ([""] if result.notes else [])
    lines += ["## Summary", "", "| provider | suite | check | passed | failed |", "|---|---|---|---:|---:|"]
    for provider in result.providers:
        for (suite, check), tally in sorted(provider.tallies.items()):
            lines.append(f"| {provider.provider} | {suite} | `{check}` | {tally.passed} | {tally.failed} |")
    lines += ["", "| provider | cases | time | skipped |", "|---|---|---:|---|"]
    for provider in result.providers:
        cases = ", ".join(f"{suite}: {n}" for suite, n in provider.cases.items())
        skipped = "; ".join(f"{suite}: {why}" for suite, why in provider.skipped.items()) or "—"
        lines.append(f"| {provider.provider} | {cases} | {sum(provider.seconds.values()):.1f} s | {skipped} |")
    lines += ["", "## Failures", ""]
    if not result.findings:
        lines += ["None.", ""]
    for number, finding in enumerate(result.findings, 1):
        where = f" ({finding.phase})" if finding.phase else ""
        lines += [
            f"### {number}. {finding.provider} · `{finding.check}` · {finding.operation}",
            "",
            f"{finding.suite}{where}: **{finding.title}**",
            "",
            "```text",
            finding.message.strip(),
            "```",
            "",
        ]
        if finding.curl:
            lines += [reproduce, "", "```bash", finding.curl.strip(), "```", ""]
    if not state_dependent:
        return "\n".join(lines) + "\n"
    lines += [
        "## Statuses accepted as state-dependent",
        "",
        "`positive_data_acceptance` also accepts these documented statuses on these operations only, because "
        "they depend on state or content no schema can express:",
        "",
    ]
    chosen = {p.provider for p in result.providers}
    lines += [
        f"- {provider} `{op_id}` {', '.join(statuses)}: {why}"
        for provider, operations in STATE_DEPENDENT.items()
        if provider in chosen
        for op_id, reasons in operations.items()
        for why, statuses in reasons.items()
    ]
    return "\n".join(lines) + "\n"


def write_markdown(result: RunResult, path: Path) -> None:
    path.write_text(markdown(result), encoding="utf-8")
