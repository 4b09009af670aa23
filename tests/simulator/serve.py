"""Start the local Entra ID + Microsoft Graph simulator.

    python tests/simulator/serve.py --seed tests/simulator/seeds/demo.yml --port 0 --ready-file /tmp/sim.json

When it is ready it writes the ready file (JSON: authority, graph_url, admin_url, ca_bundle, pid, ...) and
serves until SIGTERM or SIGINT, then removes the ready file. See docs/simulator.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from entrasim import faults as faultlib  # noqa: E402  pylint: disable=wrong-import-position
from entrasim.httpbase import write_ready_file  # noqa: E402  pylint: disable=wrong-import-position
from entrasim.server import Simulator  # noqa: E402  pylint: disable=wrong-import-position
from entrasim.tenant import SeedError  # noqa: E402  pylint: disable=wrong-import-position


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Local Microsoft Entra ID + Graph (beta) simulator for hardware OATH tokens."
    )
    parser.add_argument("--seed", required=True, help="YAML tenant seed (see docs/simulator.md)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--ready-file", help="write the connection details here as JSON once listening")
    parser.add_argument(
        "--state-dir", help="where to write the CA bundle (default: beside the ready file, or a temp dir)"
    )
    parser.add_argument("--latency-ms", type=float, default=0, help="fixed latency added to every request")
    parser.add_argument("--jitter-ms", type=float, default=0, help="random +/- jitter added to --latency-ms")
    parser.add_argument("--page-size", type=int, default=100, help="default page size of collections (default 100)")
    parser.add_argument(
        "--max-page-size",
        type=int,
        default=999,
        help="most items a page holds whatever $top asks, 1 to 999 (default 999: no cap)",
    )
    parser.add_argument("--token-lifetime", type=int, default=3599, help="access token lifetime in seconds")
    parser.add_argument(
        "--write-quota",
        default="3000/150",
        help="writes per app as N/SECONDS, or 'off' (default 3000/150, Graph's identity write quota)",
    )
    parser.add_argument("--read-rate", default="3500/10", help="reads per app as N/SECONDS, or 'off' (default 3500/10)")
    parser.add_argument(
        "--methods-rate",
        default="off",
        help="requests under /users/{id}/authentication/ and /me/authentication/ per app as N/SECONDS, "
        "or 'off' (default off; 5/10 is the strict reading of Graph's authenticationMethod limit)",
    )
    parser.add_argument(
        "--faults", help="JSON or YAML fault specification applied at start (same shape as POST /_admin/faults)"
    )
    parser.add_argument("--fault-seed", type=int, help="seed of the random generator behind fault probabilities")
    parser.add_argument("--verbose", action="store_true", help="log each HTTP request to stderr")
    return parser.parse_args(argv)


def initial_faults(args: argparse.Namespace) -> dict:
    spec: dict = {}
    if args.faults:
        with open(args.faults, encoding="utf-8") as handle:
            spec = yaml.safe_load(handle) or {}
    spec.setdefault("latency", {"ms": args.latency_ms, "jitter_ms": args.jitter_ms})
    spec.setdefault("write_quota", faultlib.parse_quota_arg(args.write_quota) or False)
    spec.setdefault("read_rate", faultlib.parse_quota_arg(args.read_rate) or False)
    spec.setdefault("methods_rate", faultlib.parse_quota_arg(args.methods_rate) or False)
    return spec


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        print(f"refusing to listen on {args.host}: the simulator serves loopback only", file=sys.stderr)
        return 2
    if args.state_dir:
        state_dir = args.state_dir
    elif args.ready_file:
        state_dir = os.path.dirname(os.path.abspath(args.ready_file))
    else:
        state_dir = tempfile.mkdtemp(prefix="entrasim-")
    try:
        simulator = Simulator(
            args.seed,
            state_dir=state_dir,
            host=args.host,
            port=args.port,
            page_size=args.page_size,
            max_page_size=args.max_page_size,
            token_lifetime=args.token_lifetime,
            fault_seed=args.fault_seed,
            initial_faults=initial_faults(args),
            verbose=args.verbose,
        )
    except (SeedError, faultlib.FaultConfigError, OSError, ValueError) as exc:
        print(f"entrasim: {exc}", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=simulator.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    info = simulator.info()
    if args.ready_file:
        write_ready_file(args.ready_file, info)
    print(f"entrasim listening on {info['graph_url']} (tenant {info['tenant_id']}, pid {info['pid']})", file=sys.stderr)
    try:
        simulator.serve_forever()
    finally:
        simulator.server.server_close()
        if args.ready_file and os.path.exists(args.ready_file):
            os.unlink(args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
