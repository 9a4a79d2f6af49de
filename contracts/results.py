"""What a contract run found: per provider, per suite and check, how many cases passed and which failed.

Three suites feed one report: ``schemathesis`` (the OpenAPI phases), ``flows`` (hypothesis state machines over a
real HTTP client) and ``documented`` (the providers' own examples replayed verbatim). Every failure is a
``Finding`` that names its check and operation and carries a curl command that reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SUITES = ("schemathesis", "flows", "documented")


@dataclass(frozen=True)
class Finding:
    provider: str
    suite: str
    check: str
    operation: str  # "POST /api/v1/assets" (the spec's path) or a flow step
    title: str
    message: str
    curl: str  # one command per line; ``$API_KEY`` stands for the key
    phase: str = ""  # schemathesis phase (examples, coverage, fuzzing, stateful) or flow name

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.provider, self.suite, self.check, self.operation, self.title)


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed


@dataclass
class ProviderResult:
    provider: str
    cases: dict[str, int] = field(default_factory=dict)  # suite -> generated/replayed cases
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)  # (suite, check) -> tally
    findings: list[Finding] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # suite -> wall time
    skipped: dict[str, str] = field(default_factory=dict)  # suite -> why it did not run

    def tally(self, suite: str, check: str, ok: bool, count: int = 1) -> None:
        entry = self.tallies.setdefault((suite, check), Tally())
        if ok:
            entry.passed += count
        else:
            entry.failed += count

    def add(self, finding: Finding) -> None:
        """Record a failure once: the same check failing the same way on the same operation is one finding."""
        if all(f.identity != finding.identity for f in self.findings):
            self.findings.append(finding)

    @property
    def failed(self) -> bool:
        return bool(self.findings)


@dataclass
class RunResult:
    target: str
    providers: list[ProviderResult] = field(default_factory=list)
    seconds: float = 0.0
    seed: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for p in self.providers for f in p.findings]

    @property
    def failed(self) -> bool:
        return any(p.failed for p in self.providers)

    def cases(self) -> dict[str, int]:
        """Suite -> cases over every provider: generated schemathesis cases, flow examples, documented replays."""
        totals: dict[str, int] = {}
        for provider in self.providers:
            for suite, n in provider.cases.items():
                totals[suite] = totals.get(suite, 0) + n
        return totals

    def checks(self) -> int:
        """Every check made, passed or failed, over every provider and suite."""
        return sum(t.total for p in self.providers for t in p.tallies.values())

    def size(self) -> str:
        """How much the run did, in one line: ``7,792 schemathesis cases, 156 flows examples, … 118,012 checks``."""
        cases = [
            f"{n:,} {suite} {'examples' if suite != 'schemathesis' else 'cases'}" for suite, n in self.cases().items()
        ]
        return ", ".join([*cases, f"{self.checks():,} checks"])
