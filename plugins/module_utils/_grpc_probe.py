# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""One unary gRPC call over a unix socket with the standard library only, to ask a KMS plugin for its status.

PRIVATE to the collection. Masters have no grpcio, and in daemonset or static-pod mode not even the plugin's
own health-check command, yet the question that matters before any apiserver is touched is whether the
socket the apiserver will use answers - so this speaks just enough HTTP/2 (RFC 9113) and gRPC to make one
call: literal HPACK request headers, one DATA frame, and the reply's DATA frame decoded as protobuf. Reply
headers are not decoded (that would need HPACK with Huffman); a call that ends without a message is reported
as a gRPC error.
"""

from __future__ import annotations

import socket
import struct
import time
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
STREAM = 1


class ProbeError(TkeKmsError):
    """The plugin did not answer the call; the message says how far it got."""


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def _literal(name: str, value: str) -> bytes:
    """HPACK 'literal header field without indexing, new name', no Huffman (RFC 7541 6.2.2)."""
    out = bytearray([0])
    for text in (name.encode(), value.encode()):
        out += _hpack_int(len(text), 7) + text
    return bytes(out)


def _hpack_int(value: int, prefix_bits: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    out = bytearray([limit])
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def encode_string_field(number: int, value: str) -> bytes:
    data = value.encode()
    return bytes([number << 3 | 2]) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_fields(message: bytes) -> t.Dict[int, t.Any]:
    """Top-level protobuf fields: length-delimited ones as bytes, varints as int (the last one wins)."""
    fields: t.Dict[int, t.Any] = {}
    position = 0

    def varint() -> int:
        nonlocal position
        shift = result = 0
        while True:
            if position >= len(message):
                raise ProbeError("the plugin's reply is not a valid protobuf message")
            byte = message[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while position < len(message):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number] = varint()
        elif wire == 2:
            length = varint()
            fields[number] = message[position : position + length]
            position += length
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        else:
            raise ProbeError("the plugin's reply is not a valid protobuf message")
    return fields


class _Connection:
    def __init__(self, path: str, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buffer = b""
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise ProbeError("cannot connect to %s: %s" % (path, exc.strerror or exc)) from exc

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ProbeError("no complete answer before the timeout")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout as exc:
                raise ProbeError("no complete answer before the timeout") from exc
            if not chunk:
                raise ProbeError("the plugin closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def frame(self) -> t.Tuple[int, int, int, bytes]:
        header = self._read(9)
        length = struct.unpack(">I", b"\0" + header[:3])[0]
        kind, flags, stream = struct.unpack(">BBI", header[3:])
        return kind, flags, stream & 0x7FFFFFFF, self._read(length)

    def close(self) -> None:
        self.sock.close()


def unary_call(socket_path: str, method: str, request: bytes, timeout: float = 5.0) -> bytes:
    """Call /package.Service/Method with one request message; returns the reply message's bytes."""
    connection = _Connection(socket_path, timeout)
    try:
        headers = b"".join(
            _literal(name, value)
            for name, value in (
                (":method", "POST"),
                (":scheme", "http"),
                (":path", method),
                (":authority", "localhost"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            )
        )
        message = b"\0" + struct.pack(">I", len(request)) + request
        connection.send(
            PREFACE
            + _frame(SETTINGS, 0, 0)
            + _frame(HEADERS, END_HEADERS, STREAM, headers)
            + _frame(DATA, END_STREAM, STREAM, message)
        )
        body = b""
        while True:
            kind, flags, stream, payload = connection.frame()
            if kind == SETTINGS and not flags & ACK:
                connection.send(_frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                connection.send(_frame(PING, ACK, 0, payload))
            elif kind == GOAWAY:
                raise ProbeError("the plugin refused the connection (HTTP/2 GOAWAY)")
            elif stream == STREAM and kind == RST_STREAM:
                raise ProbeError("the plugin reset the call (HTTP/2 RST_STREAM)")
            elif stream == STREAM and kind == DATA:
                body += _unpad(flags, payload)
            if stream == STREAM and kind in (DATA, HEADERS) and flags & END_STREAM:
                break
    except OSError as exc:
        raise ProbeError("talking to %s failed: %s" % (socket_path, exc)) from exc
    finally:
        connection.close()
    if len(body) < 5:
        raise ProbeError("%s answered %s with a gRPC error (no reply message)" % (socket_path, method))
    length = struct.unpack(">I", body[1:5])[0]
    if body[0] != 0 or len(body) < 5 + length:
        raise ProbeError("%s sent a reply to %s that could not be read" % (socket_path, method))
    return body[5 : 5 + length]


def _unpad(flags: int, payload: bytes) -> bytes:
    if flags & PADDED and payload:
        return payload[1 : len(payload) - payload[0]]
    return payload


def _text(fields: t.Dict[int, t.Any], number: int) -> str:
    value = fields.get(number, b"")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def kms_v1_version(socket_path: str, timeout: float = 5.0) -> t.Dict[str, str]:
    """v1beta1 Version: what kube-apiserver asks a KMS v1 plugin first (no call to the KMS)."""
    reply = decode_fields(
        unary_call(
            socket_path, "/v1beta1.KeyManagementService/Version", encode_string_field(1, "v1beta1"), timeout
        )
    )
    return dict(version=_text(reply, 1), runtime_name=_text(reply, 2), runtime_version=_text(reply, 3))


def kms_v2_status(socket_path: str, timeout: float = 5.0) -> t.Dict[str, str]:
    """v2 Status: version, healthz ('ok' when the plugin can use its key) and key_id."""
    reply = decode_fields(unary_call(socket_path, "/v2.KeyManagementService/Status", b"", timeout))
    return dict(version=_text(reply, 1), healthz=_text(reply, 2), key_id=_text(reply, 3))
