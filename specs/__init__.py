"""The providers' specs, shipped as the package ``emulator.specs`` (see ``[tool.setuptools.package-dir]`` in
pyproject.toml). Only data lives here: ``emulator.core.specs`` reads it with ``importlib.resources``. This file makes
the folder a regular package, which an editable install can map onto ``emulator.specs`` (a namespace package nested
in a regular one cannot be mapped)."""
