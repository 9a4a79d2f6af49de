"""A schedule: the file a run uploads and the faults the emulator does to it, drawn by hypothesis.

Everything provider-specific comes from the provider's ``ChaosProfile`` (``Provider.chaos``): which operations its
flow has, which faults are faithful for each, which files it accepts and at which sizes. A schedule is plain data:
it prints as a few lines, saves as JSON (``--replay``) and turns into control-plane fault rules.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from hypothesis import strategies as st

from emulator.core.chaos import ChaosProfile, Sample
from emulator.core.provider import Provider

MAX_TIMES = 2  # consecutive hits of one fault: shrinking then has little to take off, and runs stay short


@dataclass(frozen=True)
class Fault:
    """One fault: on ``operation``, let ``after`` requests through, then do ``kind`` to the next ``times``."""

    operation: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    after: int = 0
    times: int = 1

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        first, last = self.after + 1, self.after + self.times
        when = f"request {first}" if first == last else f"requests {first}-{last}"
        return f"{self.operation}: {self.kind}" + (f" ({params})" if params else "") + f", on {when}"

    @property
    def breaks(self) -> bool:
        """Whether the request it hits fails (``slow``, ``stall`` and ``pending`` only make it slower or longer)."""
        return self.kind not in ("slow", "stall", "pending")


@dataclass(frozen=True)
class Schedule:
    provider: str
    content_type: str
    filename: str
    size: int
    seed: int
    faults: tuple[Fault, ...] = ()

    def content(self, profile: ChaosProfile) -> bytes:
        return _sample(profile, self.content_type).make(self.size, self.seed)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "file": {
                "content_type": self.content_type,
                "filename": self.filename,
                "size": self.size,
                "seed": self.seed,
            },
            "faults": [asdict(f) for f in self.faults],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        file = data["file"]
        return cls(
            data["provider"],
            file["content_type"],
            file["filename"],
            int(file["size"]),
            int(file["seed"]),
            tuple(
                Fault(
                    f["operation"], f["kind"], dict(f.get("params", {})), int(f.get("after", 0)), int(f.get("times", 1))
                )
                for f in data.get("faults", [])
            ),
        )

    def describe(self) -> list[str]:
        lines = [f"file: {self.filename} ({self.content_type}, {self.size} bytes, seed {self.seed})"]
        lines += [f"fault {n}: {fault.describe()}" for n, fault in enumerate(self.faults, 1)] or ["no faults"]
        return lines

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.dumps().encode()).hexdigest()[:12]


def _sample(profile: ChaosProfile, content_type: str) -> Sample:
    return next(s for s in profile.samples if s.content_type == content_type)


def profile_of(provider: str) -> ChaosProfile:
    from emulator.providers import PROVIDERS

    if provider not in PROVIDERS or PROVIDERS[provider].chaos is None:
        chaotic = sorted(n for n, p in PROVIDERS.items() if p.chaos is not None)
        raise ValueError(f"unknown provider {provider!r}; chaos knows {', '.join(chaotic)}")
    profile = PROVIDERS[provider].chaos
    assert profile is not None
    return profile


def _params(kind: str, size: int, max_wait: float) -> st.SearchStrategy[dict[str, Any]]:
    whole_wait = st.integers(1, max(1, int(max_wait)))  # Retry-After is whole seconds
    wait = st.integers(1, max(1, int(max_wait * 10))).map(lambda tenths: tenths / 10)
    upto = st.integers(0, max(0, size - 1))
    if kind == "rate_limited":
        return st.fixed_dictionaries({"retry_after": whole_wait})
    if kind == "server_error":
        return st.sampled_from([500, 502, 503]).flatmap(
            lambda status: (
                st.fixed_dictionaries({"status": st.just(status)})
                if status != 503
                else st.fixed_dictionaries({"status": st.just(503)}, optional={"retry_after": whole_wait})
            )
        )
    if kind == "drop":
        return st.fixed_dictionaries({"when": st.sampled_from(["before_headers", "after_headers"])})
    if kind == "drop_upload":
        return st.fixed_dictionaries({"bytes": upto})
    if kind == "stall":
        return st.fixed_dictionaries({"bytes": upto, "seconds": wait})
    if kind == "slow":
        return st.fixed_dictionaries({"seconds": wait})
    return st.just({})  # slow_down, wrong_etag, expire, pending


def schedules(
    provider: str, *, max_faults: int = 3, max_wait: float = 2.0, kinds: tuple[str, ...] | None = None
) -> st.SearchStrategy[Schedule]:
    """Schedules for ``provider``: one accepted file (type, size either side of its part/chunk boundaries), and up
    to ``max_faults`` faults, each faithful for the operation it hits; Retry-After and delays at most
    ``max_wait`` seconds. ``kinds`` narrows the fault kinds drawn."""
    profile = profile_of(provider)

    @st.composite
    def draw(data: st.DrawFn) -> Schedule:
        sample = data(st.sampled_from(profile.samples))
        size = data(st.sampled_from(sample.sizes))
        seed = data(st.integers(0, 2**16))
        choices = [
            (step.operation, kind)
            for step in profile.steps
            for kind in step.faults
            if (kinds is None or kind in kinds) and (kind != "pending" or sample.processing)
        ]
        faults: list[Fault] = []
        if choices:
            for _ in range(data(st.integers(0, max_faults))):
                operation, kind = data(st.sampled_from(choices))
                params = data(_params(kind, size, max_wait))
                after = data(st.integers(0, 2))
                times = 1 if kind == "expire" else data(st.integers(1, MAX_TIMES))
                faults.append(Fault(operation, kind, params, after, times))
        return Schedule(provider, sample.content_type, sample.filename, size, seed, tuple(faults))

    return draw()


def rule_for(fault: Fault, provider: Provider, key: str) -> dict[str, Any]:
    """The control-plane fault rule (``POST /_emulator/faults``) that does ``fault``. API operations match the
    run's key too; storage operations carry no key (presigned URLs), so they match by operation alone."""
    profile = provider.chaos
    assert profile is not None
    rule: dict[str, Any] = {
        "provider": provider.name,
        "operation": fault.operation,
        "times": fault.times,
        "after": fault.after,
    }
    handler = provider.handlers.get(fault.operation)
    if handler is not None and handler.auth:
        rule["key"] = key
    p = fault.params
    if fault.kind == "rate_limited":
        rule |= {"action": "status", "status": 429, "retry_after": p.get("retry_after", 1)}
    elif fault.kind == "server_error":
        rule |= {"action": "status", "status": p.get("status", 500)}
        if "retry_after" in p:
            rule["retry_after"] = p["retry_after"]
    elif fault.kind == "slow_down":
        rule |= {"action": "slow_down"}
    elif fault.kind == "drop":
        rule |= {"action": "drop", "when": p.get("when", "before_headers")}
    elif fault.kind == "drop_upload":
        rule |= {"action": "drop_upload", "bytes": p.get("bytes", 0)}
    elif fault.kind == "stall":
        rule |= {"action": "stall", "bytes": p.get("bytes", 0), "seconds": p.get("seconds", 1)}
    elif fault.kind == "wrong_etag":
        rule |= {"action": "wrong_etag"}
    elif fault.kind == "slow":
        rule |= {"action": "delay", "seconds": p.get("seconds", 1)}
    elif fault.kind == "expire":
        rule |= {"action": "advance_clock", "advance": (profile.step(fault.operation).expires or 0) + 1}
    elif fault.kind == "pending":
        rule |= {"action": "pending"}
    else:
        raise ValueError(f"unknown fault kind {fault.kind!r}")
    return rule


def recoverable(schedule: Schedule, max_retries: int) -> bool:
    """Whether a careful client survives ``schedule``: every fault is transient, and no operation fails more times
    in a row than the retry budget allows."""
    failures: dict[str, int] = {}
    for fault in schedule.faults:
        if fault.breaks:
            failures[fault.operation] = failures.get(fault.operation, 0) + fault.times
    return all(n < max_retries for n in failures.values())
