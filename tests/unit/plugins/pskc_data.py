# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The seeds of the PSKC tests (the filter pskc_tokens and _files/pskc_seeds.py): a vendor's token T2-0001, its seed,
the pre-shared key of RFC 6030 section 6.1, a password for PBKDF2 (RFC 6030 section 6.2), and the entry the file gives
for it."""

from __future__ import annotations

SEED = b"12345678901234567890"
SEED_B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
PSK = bytes.fromhex("12345678901234567890123456789012")  # RFC 6030 section 6.1's pre-shared key
PASSWORD = "Vendor batch-17 p\u00e4ssword"
# Fewer PBKDF2 iterations than a vendor would use, to keep the tests fast.
TEST_ITERATIONS = 1000

T2_0001 = {
    "serial_number": "T2-0001",
    "secret_key": SEED_B32,
    "secret_format": "base32",
    "time_interval": 30,
    "hash_function": "hmacsha1",
    "manufacturer": "Token2",
    "model": "C202",
}
