"""Bounded in-memory cache of decrypted DEKs, keyed by their ciphertext.

It exists for KMS v1 restart storms: kube-apiserver forgets its own DEK cache when it restarts, then asks
for every Secret's DEK again. The plugin usually outlives that restart, so answering from here saves one
Tencent call per Secret. Entries expire `ttl` seconds after insertion (not after last use), the least
recently used entry goes first when full, and the whole cache is dropped when the key becomes unusable.
Nothing here is ever written to disk or logged.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple


class CachedPlaintext(NamedTuple):
    plaintext: bytes
    tencent_key_id: str  # the KeyId Tencent reported for this ciphertext
    expires_at: float


class DecryptCache:
    def __init__(self, max_entries: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[bytes, CachedPlaintext] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, ciphertext: bytes) -> CachedPlaintext | None:
        entry = self._entries.get(ciphertext)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[ciphertext]
            return None
        self._entries.move_to_end(ciphertext)
        return entry

    def put(self, ciphertext: bytes, plaintext: bytes, tencent_key_id: str) -> None:
        if not self.enabled:
            return
        self._entries[ciphertext] = CachedPlaintext(plaintext, tencent_key_id, self._clock() + self.ttl)
        self._entries.move_to_end(ciphertext)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> int:
        """Drop every entry; return how many there were."""
        dropped = len(self._entries)
        self._entries.clear()
        return dropped
