"""What every flow machine shares: a real HTTP client, named checks, a request log that becomes curl, and the
rate-limit ledger.

A flow machine is a hypothesis ``RuleBasedStateMachine`` that drives one provider's upload flow over HTTP (httpx,
real sockets) in an order hypothesis chooses: interleaved uploads, parts in random order and sizes, retries,
expiry by moving the virtual clock, aborts, two keys. Every assertion goes through ``FlowContext.check``, which
counts it under a check name and, when it fails, raises ``FlowFailure`` naming the check and the operation; the
runner turns that into a report finding with the failing example's requests as curl commands.

Each example runs on fresh keys, minted by the control plane with generous limits, so the ledger knows exactly
what ``X-RateLimit-Remaining`` must say after every request: the key's limit minus the requests it has made in each
limit the operation counts against, the tightest of them. Against a real provider (no control plane) the flows
use the keys given, never move a clock, and the ledger checks only what holds anywhere.
"""

from __future__ import annotations

import hashlib
import shlex
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from hypothesis.stateful import RuleBasedStateMachine

from contracts.target import GENEROUS, ProviderTarget, Target
from emulator.providers import PROVIDERS
from emulator.testing import ControlClient

SUITE = "flows"
CURL_BODY_LIMIT = 4096  # larger bodies are named by size and MD5 instead of inlined


@dataclass(frozen=True)
class ProviderContract:
    """What one provider declares for the contract suite, in its own ``contracts/flows/<provider>.py`` (as
    ``CONTRACT``), so that adding a provider touches no shared table.

    ``flows``: its flow machines. ``state_dependent``: operationId → {why: statuses}, what a schema-valid request may
    still get because of state or content no schema can express (each status one the spec documents for exactly
    that case). ``curl_examples``: (source page URL, the curl command of its docs verbatim). ``state_bound``:
    operationId → (status, why), for documented examples whose values name state a fresh account lacks.
    ``prepared``: operationId → a function that makes that state over HTTP and returns the values to send instead.
    """

    flows: tuple[type[FlowMachine], ...] = ()
    state_dependent: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    curl_examples: tuple[tuple[str, str], ...] = ()
    state_bound: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    prepared: Mapping[str, Callable[[httpx.Client, ProviderTarget], dict[str, Any]]] = field(default_factory=dict)


class FlowFailure(AssertionError):
    """A flow check failed: which check, on which operation, and what was seen."""

    def __init__(self, check: str, operation: str, message: str) -> None:
        super().__init__(f"[{check}] {operation}: {message}")
        self.check, self.operation, self.message = check, operation, message


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def curl(request: httpx.Request, keys: tuple[str, ...]) -> str:
    """A curl command that sends ``request`` again; keys become ``$API_KEY``/``$OTHER_API_KEY``."""
    parts = ["curl", "-X", request.method]
    for name, value in request.headers.items():
        if name.lower() in ("host", "content-length", "accept", "accept-encoding", "connection", "user-agent"):
            continue
        parts += ["-H", f"{name}: {value}"]
    command = " ".join(shlex.quote(p) for p in parts) + " " + shlex.quote(str(request.url))
    body = request.content
    if body:
        if len(body) <= CURL_BODY_LIMIT and body.isascii() and all(32 <= b < 127 or b in (9, 10, 13) for b in body):
            command += " --data-binary " + shlex.quote(body.decode())
        else:
            command += f" --data-binary @body-{md5(body)}.bin  # {len(body)} bytes, MD5 {md5(body)}"
    for key, variable in zip(keys, ("API_KEY", "OTHER_API_KEY"), strict=False):  # one key, or two
        command = command.replace(key, f"'\"${variable}\"'")
    return command


@dataclass
class Ledger:
    """Each key's counted requests, at the virtual time they were made (the machine freezes the clock and moves it
    only on purpose), so that the remaining quota of any rolling window is known exactly."""

    now: float = 0.0  # seconds the machine has moved the clock since it froze it
    made: list[tuple[float, str, tuple[str, ...]]] = field(default_factory=list)  # (when, key, limit names)

    def count(self, key: str, names: tuple[str, ...]) -> None:
        self.made.append((self.now, key, names))

    def remaining(self, key: str, windows: dict[str, float], limit: int) -> int:
        """The tightest of the key's limits: each counts the requests made within its window (rolling)."""
        return min(
            limit
            - sum(1 for when, who, names in self.made if who == key and name in names and self.now - when < window)
            for name, window in windows.items()
        )

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FlowContext:
    """One run of one provider's flows: the target, the tallies, and the log of the example in progress."""

    target: Target
    provider: ProviderTarget
    tallies: dict[str, list[int]] = field(default_factory=dict)  # check -> [passed, failed]
    examples: int = 0  # examples played (each a fresh machine)
    log: list[httpx.Request] = field(default_factory=list)  # the requests of the example in progress
    keys_in_use: tuple[str, ...] = ()  # the example's keys, shown as $API_KEY / $OTHER_API_KEY in curl
    # one TLS context for every example's client: building one loads the CA bundle (~25 ms), which per example was
    # 4 % of a whole contract run
    tls: ssl.SSLContext = field(default_factory=httpx.create_ssl_context)

    @property
    def control(self) -> ControlClient | None:
        return self.target.control

    @property
    def exact_limits(self) -> bool:
        """Whether every key of the run has known, generous limits (the ledger then predicts exact headers)."""
        return self.control is not None

    def check(self, name: str, operation: str, ok: bool, message: str) -> None:
        tally = self.tallies.setdefault(name, [0, 0])
        tally[0 if ok else 1] += 1
        if not ok:
            raise FlowFailure(name, operation, message)

    def curl_log(self) -> str:
        return "\n".join(curl(request, self.keys_in_use) for request in self.log)


class FlowMachine(RuleBasedStateMachine):
    """Base of every provider's flow machine. ``ctx`` is set on a subclass made per run (``bind``)."""

    ctx: ClassVar[FlowContext]
    provider_name: ClassVar[str] = ""
    flow_name: ClassVar[str] = ""
    needs_writes: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.ctx.examples += 1
        self.ctx.log.clear()
        self.http = httpx.Client(timeout=60, verify=self.ctx.tls)
        self.ledger = Ledger()
        self.keys = self._fresh_keys()
        self.ctx.keys_in_use = self.keys
        if self.ctx.control is not None:
            self.ctx.control.freeze()  # windows and expiry move only when a rule moves the clock

    def teardown(self) -> None:
        self.http.close()
        if self.ctx.control is not None:
            self.ctx.control.resume()

    @classmethod
    def bind(cls, ctx: FlowContext) -> type[FlowMachine]:
        return type(cls.__name__, (cls,), {"ctx": ctx})

    # --- keys and requests -----------------------------------------------------------------------------------------

    def _fresh_keys(self) -> tuple[str, ...]:
        """Two keys of this example's own (control plane), else the target's keys."""
        control = self.ctx.control
        if control is None:
            return self.ctx.provider.keys
        limits = {
            limit.name: GENEROUS
            for op_id, *_ in PROVIDERS[self.provider_name].specs.operations()
            for limit in PROVIDERS[self.provider_name].limits(op_id)
        }
        return tuple(str(control.create_key(self.provider_name, rate_limits=limits)["key"]) for _ in range(2))

    def api(self, method: str, op_id: str, path: str, *, key: str | None = None, **kwargs: Any) -> httpx.Response:
        """A keyed API request (path after the provider's base URL); the rate-limit headers are checked."""
        key = key or self.keys[0]
        headers = {**self.ctx.provider.auth_headers(key), **kwargs.pop("headers", {})}
        response = self.send(method, self.ctx.provider.base_url + path, headers=headers, **kwargs)
        self._check_rate_limit(op_id, key, response)
        return response

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Any request (storage URLs carry no key); logged for the failure's curl reproduction."""
        request = self.http.build_request(method, url, **kwargs)
        self.ctx.log.append(request)
        return self.http.send(request)

    def expect(self, response: httpx.Response, status: int, operation: str, check: str = "flow_status") -> None:
        self.ctx.check(
            check,
            operation,
            response.status_code == status,
            f"expected {status}, got {response.status_code}: {response.text[:300]}",
        )

    def advance(self, seconds: float) -> None:
        assert self.ctx.control is not None
        self.ctx.control.advance(seconds)
        self.ledger.advance(seconds)

    # --- rate-limit headers ----------------------------------------------------------------------------------------

    def _check_rate_limit(self, op_id: str, key: str, response: httpx.Response) -> None:
        operation = f"{op_id} ({response.request.method} {response.request.url.path})"
        if response.status_code in (401, 403) or response.status_code >= 500:
            return  # refused before the key's request counts, or a server error (the flow's own check reports it)
        windows = {limit.name: limit.window for limit in PROVIDERS[self.provider_name].limits(op_id)}
        names = tuple(windows)
        values = {
            h: response.headers.get(h) for h in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
        }
        missing = [h for h, v in values.items() if v is None]
        self.ctx.check(
            "rate_limit_headers", operation, not missing, f"{response.status_code} response lacks {', '.join(missing)}"
        )
        numbers = {h: int(v) for h, v in values.items() if v is not None and v.isdigit()}
        self.ctx.check(
            "rate_limit_headers", operation, len(numbers) == 3, f"rate-limit headers are not whole numbers: {values}"
        )
        if not names:
            return
        self.ledger.count(key, names)
        if self.ctx.exact_limits:
            expected = self.ledger.remaining(key, windows, GENEROUS)
            self.ctx.check(
                "rate_limit_headers",
                operation,
                numbers["x-ratelimit-limit"] == GENEROUS and numbers["x-ratelimit-remaining"] == expected,
                f"after {GENEROUS - expected} counted requests the key should have Limit {GENEROUS}, "
                f"Remaining {expected}; got Limit {numbers['x-ratelimit-limit']}, "
                f"Remaining {numbers['x-ratelimit-remaining']}",
            )
        else:
            self.ctx.check(
                "rate_limit_headers",
                operation,
                numbers["x-ratelimit-remaining"] <= numbers["x-ratelimit-limit"],
                f"Remaining {numbers['x-ratelimit-remaining']} exceeds Limit {numbers['x-ratelimit-limit']}",
            )


def chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
