"""The simulator (tests/simulator/serve.py) as a subprocess of the benchmark, and its admin API."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from seeds import ROOT

SERVE = ROOT / "tests" / "simulator" / "serve.py"


class Simulator:
    """``serve.py --seed SEED`` with ``options`` (``--latency-ms 25`` ...), up once its ready file exists."""

    def __init__(self, python: str, seed: Path, workdir: Path, options: list[str]) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        ready = workdir / "ready.json"
        ready.unlink(missing_ok=True)
        self.options = list(options)
        self.seen_seq = 0  # the last request log entry read: a run reads the entries after it
        self._log = open(workdir / "simulator.log", "wb")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [python, str(SERVE), "--seed", str(seed), "--port", "0", "--ready-file", str(ready), *options],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + 180
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simulator did not start: {(workdir / 'simulator.log').read_text()}")
            time.sleep(0.05)
        self.info = json.loads(ready.read_text(encoding="utf-8"))
        self._tls = ssl.create_default_context(cafile=self.info["ca_bundle"])

    def admin(self, method: str, route: str, body: Any = None, timeout: float = 120) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  https on loopback only
            f"{self.info['admin_url']}/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        with urllib.request.urlopen(request, context=self._tls, timeout=timeout) as response:  # noqa: S310
            raw = response.read()
        return json.loads(raw) if raw else None

    def reset(self) -> None:
        self.admin("POST", "reset")

    def stats(self) -> dict:
        return self.admin("GET", "stats")

    def requests(self, since: int = 0) -> list[dict]:
        return self.admin("GET", f"requests?since={since}")["requests"]

    def last_seq(self) -> int:
        log = self.requests()
        return log[-1]["seq"] if log else 0

    def tokens(self) -> dict[str, dict]:
        """The tenant's tokens by serial number (``GET /_admin/state``)."""
        return {token["serial_number"]: token for token in self.admin("GET", "state")["tokens"]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
