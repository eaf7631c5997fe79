#!/usr/bin/env python3
"""Produces one record to Kafka by speaking the protocol itself (Produce v3, a v2 record
batch), so that a test can send what the usual clients refuse to build: a header key that
is not UTF-8, for one. No Kafka library: the standard library only.

usage: raw_produce.py HOST:PORT TOPIC PARTITION KEY_HEX VALUE_HEX [HEADER_KEY_HEX=HEADER_VALUE_HEX ...]

Prints the offset the broker assigned; exits 1 with the broker's error code otherwise.
"""

import socket
import struct
import sys
import time


def crc32c(data: bytes) -> int:
    table = crc32c.table
    if table is None:
        table = []
        for i in range(256):
            crc = i
            for _ in range(8):
                crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
            table.append(crc)
        crc32c.table = table
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


crc32c.table = None


def varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def record(key: bytes, value: bytes, headers: list) -> bytes:
    body = bytearray()
    body += struct.pack(">b", 0)  # attributes
    body += varint(0)  # timestamp delta
    body += varint(0)  # offset delta
    body += varint(len(key)) + key
    body += varint(len(value)) + value
    body += varint(len(headers))
    for name, data in headers:
        body += varint(len(name)) + name + varint(len(data)) + data
    return varint(len(body)) + bytes(body)


def batch(records: bytes, count: int) -> bytes:
    now = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", 0, count - 1, now, now, -1, -1, -1, count) + records
    crc = crc32c(after_crc)
    after_length = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def string(text: bytes) -> bytes:
    return struct.pack(">h", len(text)) + text


def produce(address: str, topic: str, partition: int, records: bytes) -> int:
    host, port = address.rsplit(":", 1)
    header = struct.pack(">hhi", 0, 3, 1) + string(b"keel-raw-produce")
    body = struct.pack(">hhii", -1, -1, 30000, 1)  # no transactional id, acks=all, timeout, 1 topic
    body += string(topic.encode()) + struct.pack(">ii", 1, partition)
    body += struct.pack(">i", len(records)) + records
    request = header + body
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", read(connection, 4))[0]
        response = read(connection, size)
    # correlation id, 1 topic (name), 1 partition: index, error code, base offset
    at = 4 + 4
    name_length = struct.unpack_from(">h", response, at)[0]
    at += 2 + name_length + 4
    _, error, offset = struct.unpack_from(">ihq", response, at)
    if error != 0:
        print(f"the broker refused the record: error code {error}", file=sys.stderr)
        sys.exit(1)
    return offset


def read(connection, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return bytes(data)


def main() -> None:
    if len(sys.argv) < 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    address, topic, partition, key, value = sys.argv[1:6]
    headers = []
    for pair in sys.argv[6:]:
        name, data = pair.split("=", 1)
        headers.append((bytes.fromhex(name), bytes.fromhex(data)))
    records = record(bytes.fromhex(key), bytes.fromhex(value), headers)
    print(produce(address, topic, int(partition), batch(records, 1)))


if __name__ == "__main__":
    main()
