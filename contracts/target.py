"""Where a contract run sends its requests: an emulator it starts itself, a running emulator, or a real provider.

``Target`` answers, per provider: the root URL the spec's server path goes after, the API keys to use (a second
key, when there is one, drives the "a key never sees another's media" invariants), whether the control plane is
there (clock, faults, keys), and whether writes are allowed.

Fuzzing sends thousands of requests, so an emulator target gets generous rate limits: the one started here through
``Settings(rate_limits=...)``, a running one through keys minted by its control plane with their own limits. The
suite never sleeps on a 429: rate limiting is exercised with magic keys and the virtual clock instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from emulator.providers import PROVIDERS
from emulator.settings import Settings
from emulator.testing import ControlClient, ControlError, ServedEmulator, serve_in_thread

GENEROUS = 1_000_000_000  # requests per window: more than any run sends
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TargetError(ValueError):
    """The run cannot reach what it was asked to test (unknown provider, a key missing, a URL that serves no spec)."""


@dataclass(frozen=True)
class ProviderTarget:
    """One provider as the run reaches it."""

    name: str
    root: str  # the spec's server path and operation paths follow this (``http://127.0.0.1:8080/<provider>``)
    keys: tuple[str, ...]  # the first drives the run; a second one, if any, is "another tenant" in reports

    @property
    def key(self) -> str:
        return self.keys[0]

    @property
    def base_url(self) -> str:
        """What schemathesis and the flows put before an operation path: root + the spec's server path."""
        return self.root + PROVIDERS[self.name].specs.server_path

    def spec(self) -> dict[str, Any]:
        """The effective spec with this target as its first server (what ``/<provider>/openapi.json`` serves)."""
        return PROVIDERS[self.name].specs.served(self.root)

    def auth_headers(self, key: str | None = None) -> dict[str, str]:
        """The provider's own way of carrying a key: its header if it has one, else a bearer token."""
        policy = PROVIDERS[self.name].keys
        secret = key or self.key
        if policy.header:
            return {policy.header: secret}
        return {"Authorization": f"Bearer {secret}"}


@dataclass
class Target:
    url: str
    providers: dict[str, ProviderTarget]
    control: ControlClient | None = None  # present when the target is an emulator whose control plane answers us
    local: bool = False  # started by this run
    allow_writes: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def is_emulator(self) -> bool:
        return self.control is not None

    def allows(self, method: str) -> bool:
        return self.allow_writes or method.upper() in SAFE_METHODS


def generous_limits(names: list[str] | None = None) -> dict[str, int]:
    """``{"<provider>.<limit>": GENEROUS}`` for every limit of every (or the named) provider, as Settings takes."""
    limits: dict[str, int] = {}
    for name, provider in PROVIDERS.items():
        if names is not None and name not in names:
            continue
        for op_id, *_ in provider.specs.operations():
            for limit in provider.limits(op_id):
                limits[f"{name}.{limit.name}"] = GENEROUS
    return limits


def _own_limits(name: str) -> dict[str, int]:
    return {key.split(".", 1)[1]: value for key, value in generous_limits([name]).items()}


LocalServer = ServedEmulator  # a live emulator the suite started itself


def start_local(settings: Settings | None = None, wrap: Callable[[Any], Any] | None = None) -> ServedEmulator:
    """A live emulator (real uvicorn, in a thread) on a free loopback port; ``wrap`` may wrap its ASGI app."""
    return serve_in_thread(settings, wrap=wrap, log_level="error")


def contract_settings(names: list[str], seed: int | None = None) -> Settings:
    """Settings for an emulator the suite starts: every rate limit generous, ids reproducible from the seed."""
    return Settings(rate_limits=generous_limits(names), seed=seed)


def _emulator_providers(url: str) -> list[str] | None:
    """The providers an emulator at ``url`` serves under prefixes, or ``None`` when ``url`` is not one."""
    try:
        response = httpx.get(url.rstrip("/") + "/_emulator/health", timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("status") != "ok" or not isinstance(body.get("providers"), list):
        return None
    return [str(p) for p in body["providers"]]


def _provider_root(url: str, name: str) -> str:
    """``url/<name>`` when the emulator serves every provider under a prefix, ``url`` when it serves one at its root."""
    for root in (f"{url}/{name}", url):
        try:
            response = httpx.get(root + "/openapi.json", timeout=5)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            return root
    raise TargetError(f"the emulator at {url} serves no spec for {name}")


def _control_for(url: str) -> ControlClient | None:
    control = ControlClient(url)
    try:
        control.clock()
    except (ControlError, httpx.HTTPError):
        control.close()
        return None
    return control


def parse_keys(api_keys: list[str], names: list[str]) -> dict[str, str]:
    """``--api-key KEY`` (one provider) or ``--api-key provider=KEY`` (any number)."""
    keys: dict[str, str] = {}
    for item in api_keys:
        provider, sep, key = item.partition("=")
        if sep and provider in PROVIDERS:
            keys[provider] = key
        elif len(names) == 1:
            keys[names[0]] = item
        else:
            raise TargetError(
                "--api-key without a provider name needs exactly one --provider; "
                "use --api-key PROVIDER=KEY to give keys for several"
            )
    return keys


def _mint(control: ControlClient, name: str, secret: str | None = None) -> str:
    return str(control.create_key(name, key=secret, rate_limits=_own_limits(name))["key"])


def check_providers(names: Sequence[str]) -> None:
    """``TargetError`` naming the first of ``names`` that is not a registered provider."""
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown:
        raise TargetError(f"unknown provider {unknown[0]!r}; choose from {', '.join(PROVIDERS)}")


@contextmanager
def open_target(
    names: list[str],
    *,
    base_url: str | None = None,
    api_keys: list[str] | None = None,
    allow_writes: bool = False,
    seed: int | None = None,
    wrap: Callable[[Any], Any] | None = None,
) -> Iterator[Target]:
    """The target for a run: a fresh local emulator when ``base_url`` is None, else the server at ``base_url``.

    A ``base_url`` that serves ``/_emulator/health`` is an emulator (all providers under ``/<name>``, or the one it
    serves at its root); anything else is taken as a real provider's origin, for exactly one ``--provider``.
    """
    check_providers(names)
    given = parse_keys(api_keys or [], names)
    control: ControlClient | None
    if base_url is None:
        local = start_local(contract_settings(names, seed), wrap)
        control = ControlClient(local.url)
        try:
            providers = {
                n: ProviderTarget(n, f"{local.url}/{n}", (given.get(n) or PROVIDERS[n].keys.example,)) for n in names
            }
            yield Target(local.url, providers, control, local=True, allow_writes=True)
        finally:
            control.close()
            local.stop()
        return
    url = base_url.rstrip("/")
    served = _emulator_providers(url)
    control = _control_for(url) if served is not None else None
    # an emulator is a sandbox: writes to it are safe; a real provider gets only reads unless writes are allowed
    target = Target(url, {}, control, allow_writes=allow_writes or served is not None)
    try:
        for name in names:
            if served is not None and name not in served:
                raise TargetError(f"the emulator at {url} does not serve {name} (it serves {', '.join(served)})")
            root = _provider_root(url, name) if served is not None else url
            if served is None and len(names) != 1:
                raise TargetError(f"{url} is not an emulator: name the one provider it is with --provider")
            if control is not None:
                # a key given on the command line is registered with generous limits too (an emulator is a sandbox)
                keys: tuple[str, ...] = (_mint(control, name, given.get(name)), _mint(control, name))
            elif name in given:
                keys = (given[name],)
            elif served is not None:
                keys = (PROVIDERS[name].keys.example,)
                target.notes.append(
                    f"{name}: the control plane did not answer, so the dev key runs with the "
                    "emulator's default rate limits"
                )
            else:
                raise TargetError(f"--api-key is required for {name} at {url}")
            target.providers[name] = ProviderTarget(name, root, keys)
        if served is None and not allow_writes:
            target.notes.append("read-only run: only GET operations are sent (pass --allow-writes to upload)")
        yield target
    finally:
        if control is not None:
            control.close()
