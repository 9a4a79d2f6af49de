"""The plain loopback copy: an HTTP/1.1 sink that reads each request body into one buffer and throws it away.

Run as its own process (``python bench/sink.py PORT``) so it has a core to itself, like the servers it is compared
with. It does no parsing beyond the head and ``Content-Length``, so its speed is what loopback TCP gives Python.
"""

from __future__ import annotations

import socket
import sys
import threading

BUFFER = 1 << 20


def _serve(conn: socket.socket) -> None:
    with conn:
        buf = bytearray(BUFFER)
        view = memoryview(buf)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        remaining = length - len(rest)
        while remaining > 0:
            n = conn.recv_into(view, min(BUFFER, remaining))
            if not n:
                return
            remaining -= n
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def main(port: int) -> None:
    server = socket.create_server(("127.0.0.1", port), backlog=128)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]))
