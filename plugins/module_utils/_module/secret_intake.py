# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""A task's token secrets and verification codes, taken in by every module that writes: checked before any request
(bad input changes nothing), in the form Graph wants them, and hidden from the task's output in that form too.
Ansible hides the value as given; the normalised one (upper case, no spaces, hex turned into base32, a code padded
to 6 digits) differs from it, so the module adds it to its no-log values."""

from __future__ import annotations

from .._common.errors import InputError
from .._domain.codes import check_secret_for_codes, normalize_code, normalize_secret, require_pyotp
from .graph_module import GraphModule


def take_secret(
    module: GraphModule, secret_key: str | None, secret_format: str, *, subject: str, computes_codes: bool = False
) -> str | None:
    """``secret_key`` in base32 as Graph wants it (None when not given). ``computes_codes``: codes will be computed
    from it, so pyotp must be there and the secret long enough. ``subject``: the token, named in the error."""
    if secret_key is None:
        return None
    if computes_codes:
        require_pyotp()
    try:
        secret = normalize_secret(secret_key, secret_format)
        module.no_log_values.add(secret)
        if computes_codes:
            check_secret_for_codes(secret)
    except ValueError as exc:
        raise _refused(subject, exc) from None
    return secret


def take_code(module: GraphModule, verification_code: object, *, subject: str) -> str | None:
    """A verification code as Graph wants it, 6 digits (None when not given)."""
    if verification_code is None:
        return None
    try:
        code = normalize_code(verification_code)
    except ValueError as exc:
        raise _refused(subject, exc) from None
    module.no_log_values.add(code)
    return code


def _refused(subject: str, problem: ValueError) -> InputError:
    """The problem never holds the value (see normalize_secret and normalize_code)."""
    return InputError(f"{subject}: {str(problem).rstrip('.')}. Nothing was changed.")
