"""Seeds and declared token lists of the benchmark, generated on the fly (deterministic: the same numbers give the
same users, serial numbers and secrets, so a run can be repeated and compared).

Every secret here is a throwaway value for the local simulator."""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO_SEED = ROOT / "tests" / "simulator" / "seeds" / "demo.yml"
NAMESPACE = uuid.UUID("6b1f0c2e-7d4a-4c39-9e51-b3a8d2f4c0de")
MANUFACTURER = "Contoso"
MODEL = "Bench Key"
# The demo tenant's automation app (tests/simulator/seeds/demo.yml): what the playbooks sign in as.
TENANT_ID = "9ecb43ff-60ba-4598-9c12-6fc71a8f79ee"
CLIENT_ID = "e4f4d1a6-5df6-4204-99ad-d67852d51f00"
CLIENT_SECRET = "demo-secret-for-the-local-simulator-only"  # noqa: S105  a throwaway of the local simulator


def user(number: int) -> dict[str, str]:
    return {
        "id": str(uuid.uuid5(NAMESPACE, f"user-{number}")),
        "user_principal_name": f"bench.user{number:05d}@contoso.com",
        "display_name": f"Bench User {number:05d}",
    }


def serial(prefix: str, number: int) -> str:
    return f"{prefix}-{number:05d}"


def secret(serial_number: str) -> str:
    """A 32-character base32 seed derived from the serial number."""
    return base64.b32encode(hashlib.sha256(f"bench-seed:{serial_number}".encode()).digest()[:20]).decode("ascii")


def declared(prefix: str, count: int, first_user: int = 0) -> list[dict[str, Any]]:
    """``count`` tokens to hold activated, token i for user ``first_user + i`` (by UPN)."""
    return [
        {
            "serial_number": serial(prefix, i),
            "user": user(first_user + i)["user_principal_name"],
            "secret_key": secret(serial(prefix, i)),
            "manufacturer": MANUFACTURER,
            "model": MODEL,
        }
        for i in range(count)
    ]


def write_seed(
    path: Path,
    users: int,
    tokens: list[dict[str, Any]] | None = None,
    status: str = "activated",
    settings: dict[str, Any] | None = None,
) -> Path:
    """The demo tenant plus ``users`` bench users and, already in the tenant with ``status``, the declared
    ``tokens`` (each held by its declared user); ``settings``: simulator settings over the demo tenant's."""
    with open(DEMO_SEED, encoding="utf-8") as handle:
        seed = yaml.safe_load(handle)
    seed["settings"] = {**(seed.get("settings") or {}), **(settings or {})}
    seed["users"] += [user(i) for i in range(users)]
    seed["tokens"] += [
        {
            "serial_number": entry["serial_number"],
            "secret_key": entry["secret_key"],
            "manufacturer": entry["manufacturer"],
            "model": entry["model"],
            "status": status,
            "assigned_to": entry["user"],
        }
        for entry in tokens or []
    ]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.dump(seed, handle, Dumper=dumper, sort_keys=False)
    return path
