"""What the simulator and the test kit's hostile server share: a request handler that reads any body and shrugs off
broken connections, and the atomically written ready file."""

from __future__ import annotations

import json
import os
import ssl
from http.server import BaseHTTPRequestHandler


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, OSError, ValueError):
            self.close_connection = True

    def read_body(self) -> bytes:
        """The request body, with ``Content-Length`` or chunked."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


def write_ready_file(path: str, info: dict) -> None:
    """``info`` as JSON at ``path``, written to a temporary file first so a reader never sees half of it."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
    os.replace(tmp, path)
