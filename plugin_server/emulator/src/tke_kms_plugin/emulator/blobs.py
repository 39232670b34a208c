"""Ciphertext blobs shaped like Tencent's: `<b64 body>-k-<b64 nonce>-k-<b64 sealed header>`.

The whole string is deliberately not valid base64, as with the real service, so a client that decodes blobs
instead of treating them as opaque breaks here too. The header names the key and its material version so
Decrypt needs no KeyId; it is sealed with a fixed emulator-wide key so the key id is not visible in clear
(Tencent does not show it either) and any edit to it is detected before the key is looked up. The body is
AES-256-GCM under the key's material, with the header and the EncryptionContext as associated data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEPARATOR = "-k-"
NONCE_BYTES = 16
FORMAT_VERSION = 1
_HEADER_PREFIX = struct.Struct(">BIB")  # format version, material version, key id length
_HEADER_SEAL = AESGCM(hashlib.sha256(b"tke-kms-emulator blob header").digest())


class BlobError(Exception):
    """The blob is not one this emulator produced, or it was altered."""


@dataclass(frozen=True, slots=True)
class SealedBlob:
    key_id: str
    material_version: int
    nonce: bytes
    header: bytes
    body: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def strict_b64decode(text: str) -> bytes:
    """Standard base64 with exact padding and nothing else, as Tencent's servers decode it."""
    if len(text) % 4:  # strict_mode alone still accepts surplus '=' after a full quantum
        raise binascii.Error("base64 length must be a multiple of 4")
    return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)


def _unb64(text: str) -> bytes:
    try:
        return strict_b64decode(text)
    except ValueError as err:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise BlobError("a segment is not base64") from err


def _associated_data(header: bytes, encryption_context: str) -> bytes:
    return header + encryption_context.encode("utf-8")


def seal(
    material: AESGCM, key_id: str, material_version: int, plaintext: bytes, encryption_context: str
) -> str:
    key_id_bytes = key_id.encode("ascii")
    header = _HEADER_PREFIX.pack(FORMAT_VERSION, material_version, len(key_id_bytes)) + key_id_bytes
    nonce = os.urandom(NONCE_BYTES)
    body = material.encrypt(nonce, plaintext, _associated_data(header, encryption_context))
    return SEPARATOR.join([_b64(body), _b64(nonce), _b64(_HEADER_SEAL.encrypt(nonce, header, None))])


def parse(blob: str) -> SealedBlob:
    """Read the header without any key material; raises BlobError on anything malformed or altered."""
    segments = blob.split(SEPARATOR)
    if len(segments) != 3:
        raise BlobError("expected three segments joined by '-k-'")
    body, nonce, sealed_header = (_unb64(s) for s in segments)
    if len(nonce) != NONCE_BYTES or len(body) < 16:
        raise BlobError("segment sizes do not match")
    try:
        header = _HEADER_SEAL.decrypt(nonce, sealed_header, None)
    except InvalidTag as err:
        raise BlobError("header was altered") from err
    if len(header) < _HEADER_PREFIX.size:
        raise BlobError("header too short")
    version, material_version, key_id_length = _HEADER_PREFIX.unpack_from(header)
    key_id_bytes = header[_HEADER_PREFIX.size :]
    if version != FORMAT_VERSION or len(key_id_bytes) != key_id_length or not key_id_bytes.isascii():
        raise BlobError("unknown blob format")
    key_id = key_id_bytes.decode("ascii")
    return SealedBlob(key_id, material_version, nonce, header, body)


def open_sealed(material: AESGCM, blob: SealedBlob, encryption_context: str) -> bytes:
    try:
        return material.decrypt(blob.nonce, blob.body, _associated_data(blob.header, encryption_context))
    except InvalidTag as err:
        raise BlobError("ciphertext or EncryptionContext does not match") from err
