"""The argument parser both commands (`tke-kms-plugin` and `tke-kms-plugin health-check`) build on."""

from __future__ import annotations

import argparse

EXIT_USAGE = 2


class UsageParser(argparse.ArgumentParser):
    """Bad flags exit with status 2 and one line on stderr, without argparse's usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")
