# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Writes a PSKC (RFC 6030) seed file of two TOTP tokens, encrypted with a pre-shared key or with a password (PBKDF2),
as a vendor ships them (check.yml). Usage: write_pskc.py PATH KEY_HEX, or write_pskc.py PATH --password PASSWORD. The
seeds, key and password are throwaway values for the local simulator."""

from __future__ import annotations

import sys

import pskc

TOTP = "urn:ietf:params:xml:ns:keyprov:pskc:totp"
SEEDS = {"MOL-PSKC-0001": b"molecule-pskc-seed-01", "MOL-PSKC-0002": b"molecule-pskc-seed-02"}


def main(path: str, key_hex: str, password: str | None = None) -> None:
    container = pskc.PSKC()
    for serial, secret in SEEDS.items():
        container.add_key(
            serial=serial,
            secret=secret,
            algorithm=TOTP,
            manufacturer="Contoso",
            model="Molecule PSKC",
            time_interval=30,
            response_length=6,
            response_encoding="DECIMAL",
            algorithm_suite="HMAC-SHA1",
        )
    if key_hex == "--password" and password:
        container.encryption.setup_pbkdf2(password)
    else:
        container.encryption.setup_preshared_key(key=bytes.fromhex(key_hex), key_name="Pre-shared-key")
    container.write(path)


if __name__ == "__main__":
    main(*sys.argv[1:4])
