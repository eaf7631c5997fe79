#!/usr/bin/env python3
"""Readiness probes for the local Kafka broker and CQL store, with no dependencies.

`infra.sh` calls these instead of a JVM client so that `make up` on a running stack
answers in well under a second. Each probe does what the issue asks of "really answers":

  kafka HOST:PORT   ApiVersions, then a Metadata request; prints the cluster id and brokers.
  cql HOST:PORT     STARTUP, then `SELECT release_version FROM system.local`; prints it.
  port-free PORT    exits 0 if 127.0.0.1:PORT can be bound, 1 if something listens there.

Exit status 0 means ready; anything else prints one line on stderr saying why.
"""

import socket
import struct
import sys

TIMEOUT_S = 3.0


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        data += chunk
    return data


# --- Kafka wire protocol (https://kafka.apache.org/protocol) ------------------------------

API_VERSIONS, METADATA = 18, 3


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self, nullable=False):
        length = self.take(">h")
        if length < 0:
            if nullable:
                return None
            raise ValueError("null where a string was expected")
        value = self.data[self.pos:self.pos + length].decode()
        self.pos += length
        return value


def _kafka_call(sock, api_key, version, correlation, body):
    client_id = b"keel-probe"
    header = struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id
    request = header + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    reader = _Reader(_recv_exact(sock, size))
    if reader.take(">i") != correlation:
        raise ValueError("response correlation id does not match the request")
    return reader


def probe_kafka(host, port):
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        # ApiVersions v0: which Metadata versions does this broker speak?
        reader = _kafka_call(sock, API_VERSIONS, 0, 1, b"")
        error = reader.take(">h")
        if error:
            raise ValueError(f"ApiVersions failed with error code {error}")
        ranges = {}
        for _ in range(reader.take(">i")):
            key, low, high = reader.take(">h"), reader.take(">h"), reader.take(">h")
            ranges[key] = (low, high)
        low, high = ranges.get(METADATA, (0, -1))
        # v4..v8 share one non-flexible layout; Kafka 4 dropped v0-v3.
        version = max(low, 4)
        if version > min(high, 8):
            raise ValueError(f"broker speaks Metadata v{low}..v{high}, the probe v4..v8")
        # Metadata request: an empty topic list (no topics, just the cluster), no auto-create.
        body = struct.pack(">i", 0) + b"\x00"
        if version >= 8:
            body += b"\x00\x00"  # include cluster/topic authorized operations: false
        reader = _kafka_call(sock, METADATA, version, 2, body)
        reader.take(">i")  # throttle_time_ms
        brokers = []
        for _ in range(reader.take(">i")):
            node_id = reader.take(">i")
            host_name = reader.string()
            broker_port = reader.take(">i")
            reader.string(nullable=True)  # rack
            brokers.append(f"{node_id}@{host_name}:{broker_port}")
        cluster_id = reader.string(nullable=True)
        if not brokers:
            raise ValueError("metadata lists no brokers yet")
        return f"cluster {cluster_id}, brokers {', '.join(brokers)}"


# --- CQL native protocol v4 ----------------------------------------------------------------

OP_ERROR, OP_STARTUP, OP_READY, OP_AUTHENTICATE, OP_QUERY, OP_RESULT = 0x00, 0x01, 0x02, 0x03, 0x07, 0x08


def _cql_call(sock, stream, opcode, body):
    sock.sendall(struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body)
    _version, _flags, _stream, op, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    payload = _recv_exact(sock, length)
    if op == OP_ERROR:
        code = struct.unpack_from(">i", payload)[0]
        (msg_len,) = struct.unpack_from(">H", payload, 4)
        raise ValueError(f"CQL error {code:#x}: {payload[6:6 + msg_len].decode(errors='replace')}")
    return op, payload


def _short_string(value):
    encoded = value.encode()
    return struct.pack(">H", len(encoded)) + encoded


def probe_cql(host, port):
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        startup = struct.pack(">H", 1) + _short_string("CQL_VERSION") + _short_string("3.0.0")
        op, _ = _cql_call(sock, 1, OP_STARTUP, startup)
        if op == OP_AUTHENTICATE:
            raise ValueError("the CQL store asks for authentication; the local one should not")
        if op != OP_READY:
            raise ValueError(f"unexpected reply {op:#x} to STARTUP")
        query = "SELECT release_version FROM system.local".encode()
        body = struct.pack(">i", len(query)) + query + struct.pack(">HB", 0x0001, 0)
        op, payload = _cql_call(sock, 2, OP_QUERY, body)
        if op != OP_RESULT or struct.unpack_from(">i", payload)[0] != 2:
            raise ValueError("the release_version query did not return rows")
        reader = _Reader(payload)
        reader.take(">i")  # kind = Rows
        flags, columns = reader.take(">i"), reader.take(">i")
        if flags & 0x0002:  # has_more_pages: a [bytes] paging state follows
            reader.pos += max(reader.take(">i"), 0)
        if not flags & 0x0004:  # metadata present
            global_spec = flags & 0x0001
            if global_spec:
                reader.string(), reader.string()  # keyspace, table
            for _ in range(columns):
                if not global_spec:
                    reader.string(), reader.string()
                reader.string()  # column name
                reader.take(">H")  # type id: varchar, which has no parameters
        if reader.take(">i") < 1:
            raise ValueError("system.local returned no row")
        length = reader.take(">i")
        return f"release {payload[reader.pos:reader.pos + length].decode()}"


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves bind: connections in TIME_WAIT (say, right after
        # `make down`) do not make a port busy; a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    what, target = argv[1], argv[2]
    try:
        if what == "port-free":
            return 0 if port_free(int(target)) else 1
        host, port = target.rsplit(":", 1)
        probe = {"kafka": probe_kafka, "cql": probe_cql}[what]
        print(probe(host, int(port)))
        return 0
    except KeyError:
        print(f"unknown probe {what!r}", file=sys.stderr)
        return 2
    except (OSError, ValueError, ConnectionError, struct.error) as error:
        print(f"{what} at {target}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
