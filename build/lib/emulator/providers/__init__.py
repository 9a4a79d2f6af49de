"""The providers the emulator serves, by URL prefix. A provider is one module here plus one ``specs/`` folder."""

from emulator.core.provider import Provider
from emulator.providers import posteverywhere

PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (posteverywhere.PROVIDER,)
}
