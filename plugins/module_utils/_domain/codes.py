# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""Token secrets and TOTP codes, pure: secret normalisation, the codes the modules send, and where they come from.
pyotp is needed only to compute codes (:func:`require_pyotp`)."""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import re
import time
import typing as t
from dataclasses import dataclass, field

from ansible.module_utils.basic import missing_required_lib

from .._common.errors import InputError, PlanError
from .tokens import TokenView

try:
    import pyotp
except ImportError:  # reported through missing_required_lib by the modules that compute codes
    pyotp = None  # type: ignore[assignment]


_BASE32_RE = re.compile(r"^[A-Z2-7]+$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
DIGESTS = {"hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}
MIN_SECRET_BITS = 112


def normalize_secret(secret: str, secret_format: str = "base32") -> str:
    """Base32 as Graph wants it (upper case, no spaces, dashes or padding). ``hex`` seeds are converted.
    Raises ValueError naming the problem, never the secret."""
    if secret_format == "hex":
        cleaned = re.sub(r"[\s:-]", "", secret)
        if cleaned.lower().startswith("0x"):
            cleaned = cleaned[2:]
        if not cleaned or not _HEX_RE.match(cleaned) or len(cleaned) % 2:
            raise ValueError("secret_key is not valid hex (an even number of 0-9, a-f characters)")
        cleaned = base64.b32encode(binascii.unhexlify(cleaned)).decode("ascii").rstrip("=")
    else:
        cleaned = re.sub(r"[\s-]", "", secret).upper().rstrip("=")
        if not cleaned or not _BASE32_RE.match(cleaned):
            bad = sorted({c for c in cleaned if not _BASE32_RE.match(c)})
            raise ValueError(
                "secret_key is not valid base32 (only A-Z and 2-7)"
                + (f"; it contains {len(bad)} other character(s)" if bad else "")
            )
    if len(cleaned) > 128:
        raise ValueError("secret_key is longer than the 128 base32 characters Entra ID accepts")
    try:
        base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except binascii.Error as exc:
        raise ValueError("secret_key has an impossible base32 length") from exc
    return cleaned


def require_pyotp() -> None:
    """Refuse, with the install hint, to compute codes without pyotp."""
    if pyotp is None:
        raise InputError(missing_required_lib("pyotp"))


def totp_code(secret_b32: str, step: int, hash_function: str = "hmacsha1") -> str:
    """The 6-digit RFC 6238 code of time step ``step``, from pyotp (a string: leading zeros matter)."""
    return pyotp.TOTP(secret_b32, digits=6, digest=DIGESTS[hash_function]).generate_otp(step)


def check_secret_for_codes(secret_b32: str) -> None:
    """Fail before any request when codes can't be computed from this secret."""
    bits = len(secret_b32) * 5 // 8 * 8
    if bits < MIN_SECRET_BITS:
        raise ValueError(
            f"secret_key decodes to {bits} bits; computing codes needs at least {MIN_SECRET_BITS} "
            "(pyotp's minimum). Give verification_code, read from the token, instead."
        )


def normalize_code(code: t.Any) -> str:
    """A verification code as Graph wants it: a string of 6 digits. YAML integers are zero-padded."""
    if isinstance(code, bool):
        raise ValueError("verification_code must be 6 digits")
    if isinstance(code, int):
        if not 0 <= code <= 999_999:
            raise ValueError("verification_code must be 6 digits")
        return f"{code:06d}"
    text = str(code).strip()
    if re.fullmatch(r"[0-9]{1,5}", text):  # an integer that Ansible turned into a string for a str option
        text = text.zfill(6)
    if not re.fullmatch(r"[0-9]{6}", text):
        raise ValueError("verification_code must be a string of 6 digits")
    return text


# Computed codes are for the time step after the current one. The code a token shows now, which its previous holder
# or another run may have just used, is then never sent: Graph refuses a code whose step was already accepted, and
# accepts a later step within its drift window (a day either way at activation).
CODE_LEAD_STEPS = 1
# A code of a step another run sent is never sent again: the wait for the next step is at most this many steps (a
# longer one, from a step recorded further ahead, sends the code of the step after it instead).
MAX_CODE_WAIT_STEPS = 2
_ISO_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:Z|[+-]00:?00)?$")


class StepHistory(t.Protocol):
    """The time steps whose codes were sent for each token, by any run (``_common.run_state.CodeLedger``)."""

    def last_step(self, token_id: str) -> int | None: ...

    def record(self, token_id: str, step: int, interval: int) -> None: ...


def used_step(last_used: str | None, interval: int) -> int | None:
    """The latest step a token's ``lastUsedDateTime`` says may be taken: a run like this one sends the code of the step
    after the one it runs in (a holder signing in, the current one). None when Graph gave no such time."""
    match = _ISO_RE.match(last_used or "")
    if not match:
        return None
    seconds = calendar.timegm(tuple(int(part) for part in match.groups()[:6]) + (0, 0, 0))
    return int(seconds // interval) + CODE_LEAD_STEPS


@dataclass
class CodeSource:
    """Where activation codes come from. A given code is handed out once; codes computed from the secret are
    always for a time step later than the current one and than every one used: by this run, by any run of this
    controller (``history``, written before each code is sent) and, as far as the token's ``lastUsedDateTime``
    tells, by anyone. When one of those was used within the current step, the code waits for the next step."""

    verification_code: str | None = None
    secret_b32: str | None = None
    clock: t.Callable[[], float] = time.time
    redact: t.Callable[[str], None] = lambda code: None  # registers each code so Ansible masks it everywhere
    history: StepHistory | None = None
    sleep: t.Callable[[float], None] = time.sleep
    _given_used: bool = False
    _last_step: int | None = None
    used: list[str] = field(default_factory=list)  # kinds of code used ("given" / "computed"); never the codes
    waited: float = 0.0  # seconds spent waiting for a step no other run used

    @property
    def available(self) -> bool:
        return self.computes or (self.verification_code is not None and not self._given_used)

    @property
    def computes(self) -> bool:
        """Codes come from the secret: a refused code can be followed by one of a later step."""
        return self.secret_b32 is not None

    def next_code(self, token: TokenView) -> str:
        if self.secret_b32 is not None:
            step = self._next_step(token)
            if self.history is not None and token.id:
                self.history.record(token.id, step, token.time_interval)
            self.used.append("computed")
            code = totp_code(self.secret_b32, step, token.hash_function)
            self.redact(code)
            return code
        if self.verification_code is not None and not self._given_used:
            self._given_used = True
            self.used.append("given")
            return self.verification_code
        raise PlanError(
            f"{token.label}: the given verification_code was already used once and is never sent twice; "
            "run again with a fresh code from the token, or give secret_key to compute codes."
        )

    def sent_lately_elsewhere(self, token: TokenView) -> bool:
        """Whether another run of this controller sent a code for the token within about a time step, before this
        run sent one: that run's write may not show in this run's reads yet (Graph's reads lag behind its writes)."""
        if self.history is None or not token.id or self._last_step is not None:
            return False
        recorded = self.history.last_step(token.id)
        return recorded is not None and recorded >= int(self.clock() // token.time_interval)

    def _next_step(self, token: TokenView) -> int:
        interval = token.time_interval
        step = int(self.clock() // interval) + CODE_LEAD_STEPS
        elsewhere = self._used_elsewhere(token)
        if elsewhere is not None and step <= elsewhere:
            pause = (elsewhere - CODE_LEAD_STEPS + 1) * interval - self.clock()
            if 0 < pause <= MAX_CODE_WAIT_STEPS * interval:
                self.sleep(pause)
                self.waited += pause
            step = max(int(self.clock() // interval) + CODE_LEAD_STEPS, elsewhere + 1)
        if self._last_step is not None and step <= self._last_step:
            step = self._last_step + 1  # after a refused code of this run: the next step at once
        self._last_step = step
        return step

    def _used_elsewhere(self, token: TokenView) -> int | None:
        """The latest step another run (or the token's holder) may have used, as far as is known."""
        steps = [used_step(token.last_used, token.time_interval)]
        if self.history is not None and token.id:
            recorded = self.history.last_step(token.id)
            if self._last_step is None or (recorded is not None and recorded > self._last_step):
                steps.append(recorded)  # not the step this run sent last, which it recorded itself
        known = [step for step in steps if step is not None]
        return max(known) if known else None
