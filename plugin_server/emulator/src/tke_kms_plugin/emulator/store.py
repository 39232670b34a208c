"""Customer master keys per region, their life-cycle clock, and the optional state file."""

from __future__ import annotations

import base64
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import statefile
from .errors import ApiError

SECONDS_PER_DAY = 86400
KEY_STATES = ("Enabled", "Disabled", "PendingDelete")
MATERIAL_BYTES = 32  # AES-256
STATE_FORMAT = 1


def new_key_id() -> str:
    """A time-based UUID like Tencent's (`23e80852-1e38-11e9-b129-5cb9019b4b01`), random node."""
    return str(uuid.uuid1(node=random.getrandbits(48) | 0x010000000000))


@dataclass(eq=False)
class Key:
    key_id: str
    region: str
    alias: str
    description: str
    create_time: int
    sequence: int
    key_state: str = "Enabled"
    key_usage: str = "ENCRYPT_DECRYPT"
    tags: dict[str, str] = field(default_factory=dict)
    rotation_enabled: bool = False
    rotate_days: int = 0
    next_rotate_time: int = 0
    last_rotate_time: int = 0
    deletion_date: int = 0
    materials: list[bytes] = field(default_factory=list, repr=False)
    _ciphers: list[AESGCM] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ciphers = [AESGCM(material) for material in self.materials]

    @property
    def current_version(self) -> int:
        """Material versions count from 1; the newest one encrypts."""
        return len(self.materials)

    def cipher(self, version: int) -> AESGCM | None:
        return self._ciphers[version - 1] if 1 <= version <= len(self._ciphers) else None

    def add_material(self) -> int:
        material = os.urandom(MATERIAL_BYTES)
        self._ciphers.append(AESGCM(material))
        self.materials.append(material)
        return self.current_version

    def to_document(self) -> dict[str, Any]:
        return {
            "KeyId": self.key_id,
            "Region": self.region,
            "Alias": self.alias,
            "Description": self.description,
            "CreateTime": self.create_time,
            "Sequence": self.sequence,
            "KeyState": self.key_state,
            "KeyUsage": self.key_usage,
            "Tags": self.tags,
            "KeyRotationEnabled": self.rotation_enabled,
            "RotateDays": self.rotate_days,
            "NextRotateTime": self.next_rotate_time,
            "LastRotateTime": self.last_rotate_time,
            "DeletionDate": self.deletion_date,
            "Materials": [base64.b64encode(m).decode("ascii") for m in self.materials],
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Key:
        return cls(
            key_id=doc["KeyId"],
            region=doc["Region"],
            alias=doc["Alias"],
            description=doc["Description"],
            create_time=doc["CreateTime"],
            sequence=doc["Sequence"],
            key_state=doc["KeyState"],
            key_usage=doc["KeyUsage"],
            tags=dict(doc["Tags"]),
            rotation_enabled=doc["KeyRotationEnabled"],
            rotate_days=doc["RotateDays"],
            next_rotate_time=doc["NextRotateTime"],
            last_rotate_time=doc["LastRotateTime"],
            deletion_date=doc["DeletionDate"],
            materials=[base64.b64decode(m) for m in doc["Materials"]],
        )


class KeyStore:
    """All keys, guarded by one lock. With a state file, every change is saved before the caller answers."""

    def __init__(self, state_file: str | Path | None = None) -> None:
        self._lock = threading.RLock()
        self._regions: dict[str, dict[str, Key]] = {}
        self._sequence = 0
        self._time_offset = 0.0
        self._depth = 0
        self.state_file = Path(state_file) if state_file is not None else None
        if self.state_file is not None:
            self._load(self.state_file)

    # -- clock ---------------------------------------------------------------------------------------

    def now(self) -> int:
        """The key life-cycle clock (rotation schedule, deletion date); tests may move it forward."""
        return int(time.time() + self._time_offset)

    def advance_time(self, seconds: float) -> None:
        with self.transaction():
            self._time_offset += seconds

    # -- transactions and persistence ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock; save once when the outermost transaction ends."""
        with self._lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self.state_file is not None:
                    statefile.save(self.state_file, self._document())

    def _document(self) -> dict[str, Any]:
        return {
            "Format": STATE_FORMAT,
            "Sequence": self._sequence,
            "Keys": [key.to_document() for keys in self._regions.values() for key in keys.values()],
        }

    def _load(self, path: Path) -> None:
        document = statefile.load(path)
        if document is None:  # a new file: write it now, so an unusable path fails at start-up
            statefile.save(path, self._document())
            return
        if document.get("Format") != STATE_FORMAT:
            raise statefile.StateFileError(f"emulator state file {path} has an unknown format")
        try:
            keys = [Key.from_document(doc) for doc in document["Keys"]]
            self._sequence = int(document["Sequence"])
        except (KeyError, TypeError, ValueError) as err:
            raise statefile.StateFileError(f"emulator state file {path} is damaged: {err!r}") from err
        for key in keys:
            self._regions.setdefault(key.region, {})[key.key_id] = key

    # -- keys ----------------------------------------------------------------------------------------

    def create(
        self,
        region: str,
        *,
        alias: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        key_usage: str = "ENCRYPT_DECRYPT",
    ) -> Key:
        with self.transaction():
            self._sequence += 1
            key = Key(
                key_id=new_key_id(),
                region=region,
                alias=alias,
                description=description,
                create_time=self.now(),
                sequence=self._sequence,
                key_usage=key_usage,
                tags=dict(tags or {}),
            )
            key.add_material()
            self._regions.setdefault(region, {})[key.key_id] = key
            return key

    def get(self, region: str, key_id: str) -> Key:
        """The key, after due life-cycle events (scheduled deletion, automatic rotation); else CmkNotFound."""
        with self._lock:
            key = self._regions.get(region, {}).get(key_id)
            if key is not None and self._is_due(key):
                with self.transaction():
                    key = key if self._apply_due_events(key) else None
        if key is None:
            raise ApiError("ResourceUnavailable.CmkNotFound", f"The key {key_id} does not exist in {region}.")
        return key

    def keys(self, region: str) -> list[Key]:
        """Keys of one region in creation order."""
        with self._lock:
            keys = list(self._regions.get(region, {}).values())
            if any(self._is_due(key) for key in keys):
                with self.transaction():
                    keys = [key for key in keys if self._apply_due_events(key)]
        return sorted(keys, key=lambda key: key.sequence)

    def alias_owner(self, region: str, alias: str) -> Key | None:
        return next((key for key in self.keys(region) if key.alias == alias), None)

    def rotate(self, key: Key) -> int:
        """A new material version; blobs under older versions still decrypt."""
        with self.transaction():
            now = self.now()
            key.last_rotate_time = now
            if key.rotation_enabled:
                key.next_rotate_time = now + key.rotate_days * SECONDS_PER_DAY
            return key.add_material()

    def reset(self) -> None:
        with self.transaction():
            self._regions.clear()
            self._sequence = 0
            self._time_offset = 0.0

    def _is_due(self, key: Key) -> bool:
        now = self.now()
        return (key.key_state == "PendingDelete" and now >= key.deletion_date) or (
            key.rotation_enabled and now >= key.next_rotate_time
        )

    def _apply_due_events(self, key: Key) -> bool:
        """Runs inside a transaction. False if the key has now been deleted."""
        now = self.now()
        if key.key_state == "PendingDelete" and now >= key.deletion_date:
            del self._regions[key.region][key.key_id]
            return False
        if key.rotation_enabled and now >= key.next_rotate_time:
            self.rotate(key)
        return True
