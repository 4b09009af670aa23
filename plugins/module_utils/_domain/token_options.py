# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The options that describe a hardware OATH token, shared by every module that takes one (``hardware_oath_token``
today, the ``tokens`` entries of a bulk module tomorrow), and the limits of their text."""

from __future__ import annotations

import typing as t

# No Microsoft page gives the longest serial number, manufacturer, model or display name Graph accepts; the modules
# refuse longer values before any request. 128 characters for serial numbers, manufacturers and models: the one length
# Entra's documentation gives for the fields of a token upload ("Secret keys are limited to 128 characters", upload
# hardware OATH tokens in CSV format). 256 for display names: Entra ID's limit for the display names of directory
# objects (the user and group resources).
TEXT_LIMITS = {"serial_number": 128, "manufacturer": 128, "model": 128, "display_name": 256}
TIME_INTERVALS = (30, 60)
HASH_FUNCTIONS = ("hmacsha1", "hmacsha256")
SECRET_FORMATS = ("base32", "hex")


def token_argument_spec() -> dict[str, dict[str, t.Any]]:
    """A fresh argument spec of a token's own options (no defaults for what an existing token keeps)."""
    return {
        "serial_number": {"type": "str", "required": True},
        "secret_key": {"type": "str", "no_log": True},
        "secret_format": {"type": "str", "choices": list(SECRET_FORMATS), "default": "base32"},
        "manufacturer": {"type": "str"},
        "model": {"type": "str"},
        "time_interval": {"type": "int", "choices": list(TIME_INTERVALS)},
        "hash_function": {"type": "str", "choices": list(HASH_FUNCTIONS)},
        "display_name": {"type": "str"},
    }
