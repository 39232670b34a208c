"""A local Tencent Cloud KMS (API 2019-01-18) for tests and the demo; see docs/emulator.md."""

from .admin import EmulatorAdmin, EmulatorAdminError
from .errors import ApiError
from .server import Emulator

__all__ = ["ApiError", "Emulator", "EmulatorAdmin", "EmulatorAdminError"]
