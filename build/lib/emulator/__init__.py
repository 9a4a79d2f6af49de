"""upload-emulator: a faithful, stateful local stand-in for social-media upload APIs."""

from emulator.app import create_app
from emulator.core.errors import EmulatorError
from emulator.settings import Settings

__version__ = "0.1.0"
__all__ = ["EmulatorError", "Settings", "__version__", "create_app"]
