"""A hostile server for the test kit: what a client must never send credentials to.

    python tests/simulator/hostile.py --state-dir DIR --ready-file FILE

It listens on loopback on two ephemeral ports, one HTTPS (certificate from its own throwaway CA, written to
``DIR/hostile-ca.pem``) and one plain HTTP, and answers every request (any method, any path) 200 with
``{"value": []}``: a client that wrongly follows a link there "succeeds", and the test finds out from the log.
Each request is appended as one JSON line to ``DIR/hostile-requests.jsonl``: time, scheme, method, path, query
(values of credential parameters replaced), the lower-cased header names, the scheme of the Authorization header
(``Bearer``, ``Basic``...) and whether the body carried a client secret, client assertion or password. Header
values and bodies are never recorded: the log holds no secret.

When it is ready it writes the ready file (JSON: https_url, http_url, https_port, http_port, ca_bundle, log_file,
pid) and serves until SIGTERM or SIGINT, then removes the ready file and exits 0. In-process (pytest):
``HostileServer(state_dir).start()`` ... ``.stop()``, or use it as a context manager. See docs/simulator.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import ssl
import sys
import threading
from typing import Any, Callable
from urllib.parse import parse_qs

import trustme

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from entrasim.httpbase import RequestHandler, Server, write_ready_file  # noqa: E402  pylint: disable=wrong-import-position

CREDENTIAL_KEYS = frozenset({"client_secret", "client_assertion", "password"})
# Query parameters whose values are replaced in the log (a client could put a credential in a URL).
REDACTED_PARAMETERS = CREDENTIAL_KEYS | {"access_token", "refresh_token", "assertion", "code", "secret", "token"}
REDACTED = "<redacted>"
BODY = json.dumps({"value": []}).encode()


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def auth_scheme(value: str | None) -> str | None:
    """The scheme of an Authorization header (``Bearer``, ``Basic``, ...), never its credential. A value that does
    not look like ``<scheme> <credential>`` is ``"unknown"``: it may be a bare secret."""
    if value is None:
        return None
    parts = value.strip().split(None, 1)
    if len(parts) == 2 and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", parts[0]):
        return parts[0]
    return "unknown"


def _has_credential_key(data: Any) -> bool:
    if isinstance(data, dict):
        return any(str(k).lower() in CREDENTIAL_KEYS or _has_credential_key(v) for k, v in data.items())
    if isinstance(data, list):
        return any(_has_credential_key(v) for v in data)
    return False


def credential_in_body(body: bytes) -> bool:
    """True when a JSON or form body holds a client_secret, client_assertion or password key."""
    if not body:
        return False
    text = body.decode("utf-8", "replace")
    try:
        if _has_credential_key(json.loads(text)):
            return True
    except ValueError:
        pass
    return any(k.lower() in CREDENTIAL_KEYS for k in parse_qs(text, keep_blank_values=True))


def redacted_query(raw_query: str) -> dict:
    """The decoded query, credential parameters' values replaced."""
    return {
        k: REDACTED if k.lower() in REDACTED_PARAMETERS else v[0]
        for k, v in parse_qs(raw_query, keep_blank_values=True).items()
    }


class RequestRecorder:
    """Appends one JSON line per request to the log file (opened for each line, so truncating the file from
    outside is safe)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        with open(path, "w", encoding="utf-8"):
            pass

    def record(self, entry: dict) -> None:
        line = json.dumps(entry) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()


class _Server(Server):
    def __init__(
        self, address: tuple, scheme: str, recorder: RequestRecorder, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.scheme = scheme
        self.recorder = recorder
        self.ssl_context = ssl_context
        super().__init__(address, _Handler)


class _Handler(RequestHandler):
    server_version = "hostile/1.0"
    server: _Server

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Any method (do_GET, do_POST, do_PROPFIND, ...) gets the same answer.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  pylint: disable=redefined-builtin
        pass

    def _answer(self) -> None:
        body = self.read_body()
        raw_path, _sep, raw_query = self.path.partition("?")
        self.server.recorder.record(
            {
                "time": _now_iso(),
                "scheme": self.server.scheme,
                "method": self.command,
                "path": raw_path,
                "query": redacted_query(raw_query),
                "header_names": sorted({k.lower() for k in self.headers}),
                "authorization": auth_scheme(self.headers.get("Authorization")),
                "credential_in_body": credential_in_body(body),
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(BODY)


class HostileServer:
    """The two listeners (HTTPS and plain HTTP) and their request log, in this process."""

    def __init__(self, state_dir: str, host: str = "127.0.0.1") -> None:
        if not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}\.\d{1,3}", host):
            raise ValueError(f"refusing to listen on {host}: the hostile server serves IPv4 loopback only")
        os.makedirs(state_dir, exist_ok=True)
        self.host = host
        self.ca_bundle = os.path.join(state_dir, "hostile-ca.pem")
        self.log_file = os.path.join(state_dir, "hostile-requests.jsonl")
        ca = trustme.CA(organization_name="tokenops.entra hostile test CA")
        ca.cert_pem.write_to_path(self.ca_bundle)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*dict.fromkeys((host, "127.0.0.1", "localhost", "::1"))).configure_cert(context)
        recorder = RequestRecorder(self.log_file)
        self.https = _Server((host, 0), "https", recorder, context)
        self.http = _Server((host, 0), "http", recorder)
        self._threads: list[threading.Thread] = []

    def info(self) -> dict:
        https_port, http_port = self.https.server_address[1], self.http.server_address[1]
        return {
            "https_url": f"https://{self.host}:{https_port}",
            "http_url": f"http://{self.host}:{http_port}",
            "https_port": https_port,
            "http_port": http_port,
            "ca_bundle": self.ca_bundle,
            "log_file": self.log_file,
            "pid": os.getpid(),
        }

    def start(self) -> dict:
        """Serve both ports in background threads; returns :meth:`info`."""
        for server in (self.https, self.http):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self.info()

    def requests(self) -> list[dict]:
        """The log so far."""
        with open(self.log_file, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def stop(self) -> None:
        for server in (self.https, self.http):
            if self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(10)
        self._threads = []

    def __enter__(self) -> HostileServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A hostile HTTPS + HTTP server that records what clients send it.")
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--ready-file", help="write the connection details here as JSON once listening")
    parser.add_argument(
        "--state-dir", help="where to write the CA and the request log (default: beside the ready file)"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.state_dir and not args.ready_file:
        parser.error("--state-dir or --ready-file is required")
    state_dir = args.state_dir or os.path.dirname(os.path.abspath(args.ready_file))
    try:
        server = HostileServer(state_dir, args.host)
    except (OSError, ValueError) as exc:
        print(f"hostile: {exc}", file=sys.stderr)
        return 2
    stopped = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    info = server.start()
    try:
        if args.ready_file:
            write_ready_file(args.ready_file, info)
        print(f"hostile listening on {info['https_url']} and {info['http_url']} (pid {info['pid']})", file=sys.stderr)
        while not stopped.wait(0.5):
            pass
    finally:
        server.stop()
        if args.ready_file and os.path.exists(args.ready_file):
            os.unlink(args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
