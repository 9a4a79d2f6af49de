"""The providers the emulator serves, found by module: each module here that defines ``PROVIDER`` is one.

Adding a provider is one module in this package plus one ``specs/<name>/`` folder; nothing else names it.
"""

import importlib
import pkgutil

from emulator.core.provider import Provider


def _discover() -> dict[str, Provider]:
    found: dict[str, Provider] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        provider = getattr(module, "PROVIDER", None)
        if isinstance(provider, Provider):
            found[provider.name] = provider
    return found


PROVIDERS: dict[str, Provider] = _discover()
