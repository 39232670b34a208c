"""Read the KMS envelopes kube-apiserver writes to etcd (to check what is really stored).

v1: `k8s:enc:kms:v1:<name>:` + 2-byte big-endian length + encrypted DEK + AES data.
v2: `k8s:enc:kms:v2:<name>:` + protobuf EncryptedObject{1 encryptedData, 2 keyID,
    3 encryptedDEKSource, 4 annotations, 5 encryptedDEKSourceType}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

V1_PREFIX = b"k8s:enc:kms:v1:"
V2_PREFIX = b"k8s:enc:kms:v2:"


@dataclass(frozen=True)
class Envelope:
    provider: str
    encrypted_dek: bytes  # v1: the plugin's ciphertext of the DEK; v2: of the DEK seed
    data: bytes
    key_id: str = ""  # v2 only
    annotations: dict[str, bytes] = field(default_factory=dict)


def _provider_and_body(value: bytes, prefix: bytes) -> tuple[str, bytes]:
    if not value.startswith(prefix):
        raise ValueError(f"not a {prefix.decode()} value: {value[:32]!r}")
    name, sep, body = value[len(prefix) :].partition(b":")
    if not sep:
        raise ValueError("no provider name terminator")
    return name.decode(), body


def parse_v1(value: bytes) -> Envelope:
    provider, body = _provider_and_body(value, V1_PREFIX)
    length = int.from_bytes(body[:2], "big")
    if len(body) < 2 + length:
        raise ValueError("truncated encrypted DEK")
    return Envelope(provider, body[2 : 2 + length], body[2 + length :])


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message with varint and length-delimited fields."""
    found, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(buf, pos)
        elif wire_type == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise ValueError(f"unexpected protobuf wire type {wire_type}")
        found.append((number, value))
    return found


def parse_v2(value: bytes) -> Envelope:
    provider, body = _provider_and_body(value, V2_PREFIX)
    data, key_id, dek, annotations = b"", "", b"", {}
    for number, item in _fields(body):
        if number == 1:
            data = item
        elif number == 2:
            key_id = item.decode()
        elif number == 3:
            dek = item
        elif number == 4:
            entry = dict(_fields(item))
            annotations[entry[1].decode()] = entry.get(2, b"")
    return Envelope(provider, dek, data, key_id, annotations)
