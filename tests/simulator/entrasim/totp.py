"""TOTP verification as Entra does it at activation: a drift window, and no replay of an accepted code."""

from __future__ import annotations

import hashlib
import hmac

import pyotp

DIGESTS = {"hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}

# Reference: 30 s tokens may drift +-1 day at activation, 60 s tokens +-2 days; both are 2880 steps.
DEFAULT_ACTIVATION_WINDOW_STEPS = 2880

ACCEPTED = "accepted"
REJECTED = "rejected"
REPLAYED = "replayed"


def totp_for(secret: str, hash_function: str, interval: int) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=6, digest=DIGESTS[hash_function], interval=interval)


def verify(
    secret: str,
    hash_function: str,
    interval: int,
    code: str,
    now: float,
    *,
    window_steps: int,
    last_accepted_step: int | None,
) -> tuple[str, int | None]:
    """Check ``code`` against every step within ``window_steps`` of ``now``, nearest first.

    Returns ``(ACCEPTED, step)``, ``(REPLAYED, None)`` when the code only matches steps at or before the last
    accepted one, or ``(REJECTED, None)``.
    """
    totp = totp_for(secret, hash_function, interval)
    current = int(now // interval)
    matched_old_step = False
    for distance in range(window_steps + 1):
        for step in sorted({current - distance, current + distance}):
            if not hmac.compare_digest(totp.generate_otp(step), code):
                continue
            if last_accepted_step is not None and step <= last_accepted_step:
                matched_old_step = True
                continue
            return ACCEPTED, step
    return (REPLAYED, None) if matched_old_step else (REJECTED, None)
