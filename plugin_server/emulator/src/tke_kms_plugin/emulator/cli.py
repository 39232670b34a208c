"""`tke-kms-emulator`: run the emulator until SIGTERM/SIGINT.

On start it prints one JSON line to stdout, e.g. `{"host": "127.0.0.1", "port": 40123, "endpoint":
"127.0.0.1:40123", "url": "http://127.0.0.1:40123"}`, so `--port 0` callers learn the port. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable

from .server import Emulator
from .statefile import StateFileError

CREDENTIALS_ENV = "TKE_KMS_EMULATOR_CREDENTIALS"


def parse_credentials(entries: Iterable[str]) -> dict[str, str]:
    """`ID:KEY` entries (the key may itself contain ':') into {SecretId: SecretKey}."""
    credentials = {}
    for entry in entries:
        secret_id, separator, secret_key = entry.strip().partition(":")
        if not separator or not secret_id or not secret_key:
            raise ValueError("credentials must look like SECRET_ID:SECRET_KEY")
        credentials[secret_id] = secret_key
    return credentials


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tke-kms-emulator",
        description="A local Tencent Cloud KMS (API 2019-01-18): real wire format, TC3 signatures, AES-GCM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--state", metavar="FILE", help="keep keys in this file (0600) across restarts")
    parser.add_argument(
        "--credentials",
        metavar="ID:KEY",
        nargs="+",
        action="extend",
        default=[],
        help=f"accepted API key pairs; also ${CREDENTIALS_ENV}='id:key[,id:key]' (keeps them out of ps)",
    )
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    entries = list(args.credentials)
    entries += [entry for entry in os.environ.get(CREDENTIALS_ENV, "").split(",") if entry.strip()]
    try:
        credentials = parse_credentials(entries)
    except ValueError as err:
        parser.error(str(err))
    if not credentials:
        parser.error(f"no credentials: pass --credentials ID:KEY or set {CREDENTIALS_ENV}")
    try:
        emulator = Emulator(credentials, state_file=args.state).start(args.host, args.port)
    except (StateFileError, OSError) as err:
        print(f"tke-kms-emulator: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(
        json.dumps(
            {"host": emulator.host, "port": emulator.port, "endpoint": emulator.endpoint, "url": emulator.url}
        ),
        flush=True,
    )
    stop.wait()
    emulator.stop()
    return 0
