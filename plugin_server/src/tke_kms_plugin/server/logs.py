"""Structured JSON logs on stderr, one object per line.

Callers pass context as `extra={"fields": {...}}` (v2 uid, Tencent RequestId, codes). Request data,
ciphertexts and credentials are never passed, and the SDK's own logger, which formats whole HTTP requests
(with the plaintext and the signature) at DEBUG, is silenced whatever the verbosity.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

# klog habit: --v=2 is the usual production level, --v=4 adds one line per request.
DEBUG_FROM_VERBOSITY = 4
_SILENCED = ("tencentcloud_sdk_common", "urllib3", "grpc", "asyncio")


def level_for(verbosity: int) -> int:
    return logging.DEBUG if verbosity >= DEBUG_FROM_VERBOSITY else logging.INFO


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if v not in (None, "")})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup(verbosity: int, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_for(verbosity))
    for name in _SILENCED:
        logging.getLogger(name).setLevel(logging.WARNING)
    sdk = logging.getLogger("tencentcloud_sdk_common")
    sdk.setLevel(logging.CRITICAL + 1)  # its DEBUG/ERROR records carry request bodies
    sdk.propagate = False
