# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-side helpers of the integration targets, run with the interpreter of the ansible-test venv
(``ansible_playbook_python``), which has the simulator's requirements (tests/integration/requirements.txt).

    sim_helper.py seed DEMO_SEED OUT_DIR        the integration seed (demo.yml + a certificate app, a federated
                                                app, a read-only federated app, an inventory-only app, a
                                                user-assigned managed identity) and
                                                the certificate app's PEM (private key + certificate, mode 0600)
    sim_helper.py codes SECRET... [--hash H] [--interval S] [--start T] [--end T] [--margin N]
                                                the TOTP codes of every time step from START - N steps to END + N,
                                                of each secret
    sim_helper.py wrong SECRET [--hash H] [--interval S]
                                                a well-formed code that the simulator accepts at no step of its
                                                drift window (+-2880 steps) around now
    sim_helper.py hex SECRET                    the secret seed in hex (secret_format=hex)
    sim_helper.py pkcs12 PEM OUT [--password-stdin] [--base64]
                                                the PEM's private key and certificate as a PKCS#12 file (mode 0600),
                                                with the password read from stdin, or none; --base64: as one line of
                                                base64 text, as AWX's file injector writes a credential's field
    sim_helper.py wait-step [--interval S] [--left N]
                                                waits until at least N seconds of the current time step are left,
                                                so that what follows happens within one step
    sim_helper.py start DEMO_SEED OUT_DIR SERVE_PY [--lifetime S] [--timeout S]
                                                builds the integration seed (as seed does), starts the simulator
                                                (SERVE_PY) in a session of its own, ended by `timeout` after S
                                                seconds if nobody stops it, its output in OUT_DIR/simulator.log, and
                                                waits for its ready file OUT_DIR/ready.json: the seed, the PEM and
                                                the ready file's content, or the error and the simulator's output
    sim_helper.py stop PID READY_FILE [--timeout S]
                                                SIGTERM to PID, then waits until the ready file is gone (the
                                                simulator removes it on a clean exit); exits 1 if it stays

Every command prints JSON on stdout.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pyotp
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

CERT_APP = "1c0ffee0-5d1e-4f6a-8b2c-0000000000c1"
FED_APP = "1c0ffee0-5d1e-4f6a-8b2c-0000000000c2"
USER_MI = "1c0ffee0-5d1e-4f6a-8b2c-0000000000c3"
# An app that may write the inventory but not users' methods: Graph ignores assignTo on its creates (or refuses
# them, per the simulator's create_assign_without_permission setting).
INVENTORY_APP = "1c0ffee0-5d1e-4f6a-8b2c-0000000000c4"
INVENTORY_APP_SECRET = "inventory-only-secret-for-the-local-simulator-only"
INVENTORY_PERMISSIONS = ["Policy.ReadWrite.AuthenticationMethod", "User.Read.All"]
GH_ISSUER = "https://token.actions.githubusercontent.com"
GH_SUBJECT = "repo:tokenops/entra:ref:refs/heads/main"
# The GitOps example's read-only app, for the plans of pull requests (its federated credential: their subject).
FED_READ_APP = "1c0ffee0-5d1e-4f6a-8b2c-0000000000c5"
GH_PR_SUBJECT = "repo:tokenops/entra:pull_request"
READ_PERMISSIONS = [
    "Policy.Read.All",
    "Policy.Read.AuthenticationMethod",
    "UserAuthenticationMethod.Read.All",
    "User.Read.All",
]
# What the module needs (its documented least privilege).
PERMISSIONS = ["Policy.ReadWrite.AuthenticationMethod", "UserAuthenticationMethod.ReadWrite.All", "User.Read.All"]
DIGESTS = {"hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}
DRIFT_WINDOW_STEPS = 2880  # the simulator's default activation_window_steps
# Users of the integration seed only: one at the five-method limit (five authenticator apps), one holding a legacy
# token (from the old CSV upload: in his methods, not in the inventory) whose serial number real_service_fidelity
# imports into the inventory.
EXTRA_USERS = [
    {
        "id": "5c4b3a29-1807-4f6e-9d5c-4b3a29180701",
        "user_principal_name": "pradeep.gupta@contoso.com",
        "display_name": "Pradeep Gupta",
        "other_oath_methods": 5,
    },
    {
        "id": "5c4b3a29-1807-4f6e-9d5c-4b3a29180702",
        "user_principal_name": "nestor.wilke@contoso.com",
        "display_name": "Nestor Wilke",
        "legacy_oath_tokens": [
            {
                "id": "5c4b3a29-1807-4f6e-9d5c-4b3a29180703",
                "serial_number": "FIDB-0001",
                "manufacturer": "Contoso",
                "model": "CSV upload",
            }
        ],
    },
]


def certificate_pem(common_name: str) -> str:
    """A self-signed RSA certificate and its private key, in one PEM (key first)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return key_pem + cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def cmd_seed(args: argparse.Namespace) -> dict:
    with open(args.demo_seed, encoding="utf-8") as handle:
        seed = yaml.safe_load(handle)
    os.makedirs(args.out_dir, exist_ok=True)
    pem = certificate_pem("tokenops-integration-cert-app")
    pem_path = os.path.join(args.out_dir, "cert-app.pem")
    fd = os.open(pem_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(pem)
    cert_only = pem[pem.index("-----BEGIN CERTIFICATE-----") :]
    seed["apps"] += [
        {
            "client_id": CERT_APP,
            "display_name": "tokenops-integration-cert",
            "certificates": [cert_only],
            "application_permissions": list(PERMISSIONS),
        },
        {
            "client_id": FED_APP,
            "display_name": "tokenops-integration-github",
            "federated_credentials": [{"name": "main", "issuer": GH_ISSUER, "subject": GH_SUBJECT}],
            "application_permissions": list(PERMISSIONS),
        },
        {
            "client_id": FED_READ_APP,
            "display_name": "tokenops-integration-github-read-only",
            "federated_credentials": [{"name": "pull-requests", "issuer": GH_ISSUER, "subject": GH_PR_SUBJECT}],
            "application_permissions": list(READ_PERMISSIONS),
        },
        {
            "client_id": INVENTORY_APP,
            "display_name": "tokenops-integration-inventory-only",
            "client_secret": INVENTORY_APP_SECRET,
            "application_permissions": list(INVENTORY_PERMISSIONS),
        },
    ]
    seed["users"] += EXTRA_USERS
    seed["managed_identities"].append(
        {
            "client_id": USER_MI,
            "display_name": "tokenops-integration-user-mi",
            "application_permissions": list(PERMISSIONS),
        }
    )
    seed_path = os.path.join(args.out_dir, "integration-seed.yml")
    with open(seed_path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(seed, handle, sort_keys=False)
    return {"seed": seed_path, "cert_pem": pem_path}


def totp(args: argparse.Namespace, secret: str | None = None) -> pyotp.TOTP:
    return pyotp.TOTP(secret or args.secret, digits=6, digest=DIGESTS[args.hash], interval=args.interval)


def cmd_codes(args: argparse.Namespace) -> dict:
    now = time.time()
    start = int((args.start or now) // args.interval) - args.margin
    end = int((args.end or now) // args.interval) + args.margin
    generators = [totp(args, secret) for secret in args.secret]
    return {
        "steps": [start, end],
        "codes": sorted({generator.generate_otp(step) for generator in generators for step in range(start, end + 1)}),
    }


def cmd_wrong(args: argparse.Namespace) -> dict:
    generator = totp(args)
    current = int(time.time() // args.interval)
    margin = DRIFT_WINDOW_STEPS + 10
    valid = {generator.generate_otp(step) for step in range(current - margin, current + margin + 1)}
    for candidate in range(135791, 1_000_000, 7919):
        code = f"{candidate:06d}"
        if code not in valid:
            return {"code": code}
    raise SystemExit("no wrong code found")


def cmd_wait_step(args: argparse.Namespace) -> dict:
    left = args.interval - time.time() % args.interval
    if left < args.left:
        time.sleep(left + 0.05)
    now = time.time()
    return {"step": int(now // args.interval), "left": round(args.interval - now % args.interval, 3)}


def cmd_start(args: argparse.Namespace) -> dict:
    result = cmd_seed(args)
    ready = os.path.join(args.out_dir, "ready.json")
    log = os.path.join(args.out_dir, "simulator.log")
    command = [sys.executable, args.serve_py, "--seed", result["seed"], "--port", "0", "--ready-file", ready]
    with open(log, "wb") as output:
        launcher = subprocess.Popen(  # pylint: disable=consider-using-with  # it outlives this helper
            ["timeout", str(args.lifetime), *command],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not ended with this helper's process group
        )
    with open(os.path.join(args.out_dir, "launcher.pid"), "w", encoding="ascii") as handle:
        handle.write(str(launcher.pid))
    deadline = time.monotonic() + args.timeout
    while not os.path.exists(ready) and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with open(ready, encoding="utf-8") as handle:
            return {**result, "ready": json.load(handle)}
    except (OSError, ValueError):
        with open(log, encoding="utf-8", errors="replace") as handle:
            output_text = handle.read()
        exited = launcher.poll()
        why = f"exited with status {exited}" if exited is not None else f"wrote no ready file in {args.timeout} s"
        return {**result, "error": f"The simulator did not start ({why}): {output_text}"}


def cmd_stop(args: argparse.Namespace) -> dict:
    with contextlib.suppress(ProcessLookupError):  # gone already: only its ready file is left to wait for
        os.kill(args.pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while os.path.exists(args.ready_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    if os.path.exists(args.ready_file):
        raise SystemExit(f"The simulator (pid {args.pid}) did not remove {args.ready_file} in {args.timeout} s")
    return {"stopped": args.pid}


def cmd_hex(args: argparse.Namespace) -> dict:
    secret = args.secret.upper()
    return {"hex": base64.b32decode(secret + "=" * (-len(secret) % 8)).hex()}


def cmd_pkcs12(args: argparse.Namespace) -> dict:
    with open(args.pem, "rb") as handle:
        pem = handle.read()
    password = sys.stdin.read().rstrip("\n").encode() if args.password_stdin else b""
    key = serialization.load_pem_private_key(pem, password=None)
    cert = x509.load_pem_x509_certificate(pem)
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    pfx = pkcs12.serialize_key_and_certificates(b"tokenops-integration-cert-app", key, cert, None, encryption)
    content = base64.b64encode(pfx) + b"\n" if args.base64 else pfx
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    return {"path": args.out, "encrypted": bool(password)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    seed = commands.add_parser("seed")
    seed.add_argument("demo_seed")
    seed.add_argument("out_dir")
    for name in ("codes", "wrong", "hex"):
        sub = commands.add_parser(name)
        sub.add_argument("secret", nargs="+" if name == "codes" else None)
        sub.add_argument("--hash", default="hmacsha1", choices=sorted(DIGESTS))
        sub.add_argument("--interval", type=int, default=30)
        if name == "codes":
            sub.add_argument("--start", type=float)
            sub.add_argument("--end", type=float)
            sub.add_argument("--margin", type=int, default=2)
    pfx = commands.add_parser("pkcs12")
    pfx.add_argument("pem")
    pfx.add_argument("out")
    pfx.add_argument("--password-stdin", action="store_true")
    pfx.add_argument("--base64", action="store_true")
    start = commands.add_parser("start")
    start.add_argument("demo_seed")
    start.add_argument("out_dir")
    start.add_argument("serve_py")
    start.add_argument("--lifetime", type=int, default=900)
    start.add_argument("--timeout", type=float, default=60.0)
    stop = commands.add_parser("stop")
    stop.add_argument("pid", type=int)
    stop.add_argument("ready_file")
    stop.add_argument("--timeout", type=float, default=30.0)
    wait = commands.add_parser("wait-step")
    wait.add_argument("--interval", type=int, default=30)
    wait.add_argument("--left", type=float, default=15.0)
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args(sys.argv[1:])
    handler = {
        "seed": cmd_seed,
        "codes": cmd_codes,
        "wrong": cmd_wrong,
        "hex": cmd_hex,
        "pkcs12": cmd_pkcs12,
        "wait-step": cmd_wait_step,
        "start": cmd_start,
        "stop": cmd_stop,
    }[args.command]
    print(json.dumps(handler(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
