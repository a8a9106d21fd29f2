"""Bounds for the operator's small HTTP listeners (probes/metrics, the ApplicationSet plugin).

`http.server` gives each connection a thread and, at best, a timeout per socket read: a client
that sends one byte every few seconds, or that opens connections and sends nothing, holds its
thread forever. Here every request has one deadline for its request line, headers and body
(counted from when the server starts waiting for it, so an idle keep-alive connection is closed
too), writes have their own timeout, and the number of connections served at once is capped;
past the cap a connection gets an immediate 503 and is closed.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Seconds a client has for one whole request (line, headers and body).
REQUEST_DEADLINE = 10.0
#: Seconds a single write to the client may block.
WRITE_TIMEOUT = 10.0
#: Connections served at once per listener.
MAX_CONNECTIONS = 64

_BUSY_BODY = b'{"error":"Busy","message":"too many open connections; try again"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\n"
         b"Retry-After: 1\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


class _DeadlineReader(io.RawIOBase):
    """Socket reads that share one deadline: the timeout of each read is what is left of it."""

    def __init__(self, sock: socket.socket, write_timeout: float) -> None:
        self._sock = sock
        self._write_timeout = write_timeout
        self.deadline = time.monotonic() + REQUEST_DEADLINE

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self._sock.settimeout(left)
        try:
            return self._sock.recv_into(buf)
        finally:
            # Writes (the response) get their own timeout, not what was left of the read deadline.
            self._sock.settimeout(self._write_timeout)


class BoundedHandler(BaseHTTPRequestHandler):
    """A handler whose whole request must arrive within the server's `request_deadline` seconds."""

    timeout = WRITE_TIMEOUT  # StreamRequestHandler applies it to the socket: bounds every write

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain file object: replaced by one that keeps the deadline
        self._reader = _DeadlineReader(self.connection, self.timeout or WRITE_TIMEOUT)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.deadline = time.monotonic() + float(getattr(self.server, "request_deadline", REQUEST_DEADLINE))
        super().handle_one_request()


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading server with at most `max_connections` connections being served."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 bind_and_activate: bool = True, *, max_connections: int = MAX_CONNECTIONS,
                 request_deadline: float = REQUEST_DEADLINE) -> None:
        self.max_connections = max_connections
        self.request_deadline = request_deadline
        # An IPv6 literal (e.g. a pod IP from the downward API) needs an AF_INET6 socket.
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().__init__(address, handler, bind_and_activate)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
