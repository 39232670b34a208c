"""The one exception type the emulator turns into a Tencent Cloud error envelope."""


class ApiError(Exception):
    """A Tencent Cloud API error: `code` is the documented error code, `message` says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
