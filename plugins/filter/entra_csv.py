# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: entra_csv_tokens
short_description: Turn the Entra admin center's hardware token CSV into token entries
version_added: 1.0.0
description:
  - Reads the CSV file that the Microsoft Entra admin center takes to upload hardware OATH tokens (header
    C(upn,serial number,secret key,time interval,manufacturer,model)) and returns its rows as entries of the
    O(tokenops.entra.hardware_oath_inventory#module:tokens) option of M(tokenops.entra.hardware_oath_inventory).
  - The header is matched without regard to case or surrounding spaces; the columns may come in any order, and
    C(time interval), C(manufacturer) and C(model) may be left out. A column the format does not have is refused.
  - A UTF-8 byte order mark, CRLF or CR line ends, quoted cells, blank lines and empty trailing columns (as
    spreadsheets export them) are taken.
  - "Each row is checked, and the first problem is refused naming its line (counted from 1, as a spreadsheet numbers
    its rows) and column: a missing C(upn), C(serial number) or C(secret key); a secret key that is not base32
    (spaces, dashes, C(=) padding and case don't matter) or too short to compute activation codes from (at least
    112 bits, 23 base32 characters); a time interval other than V(30) or V(60) (empty: the module's default, 30); a
    serial number appearing twice (naming both lines); a cell starting with C(=), C(+), C(-) or C(@), which a
    spreadsheet runs as a formula; and a serial number Excel turned into scientific notation (such as
    C(1.23457E+11))."
  - Excel also drops the leading zeros of serial numbers in columns it takes for numbers; that can't be told from
    the file. Format the serial number column as text before saving the file from Excel.
  - No error message quotes a cell, only its line and column. When a row is short of a cell (or has one too many),
    its values shift into other columns, so any cell may hold a seed; an error says which cell, never what it holds.
  - The result holds the secret keys. Keep the file in Ansible Vault, and set C(no_log) on tasks that show the
    result.
options:
  _input:
    description:
      - The text of the CSV file, for example from P(ansible.builtin.file#lookup) or P(ansible.builtin.unvault#lookup).
    type: string
    required: true
author:
  - tokenops developers (@tokenops)
seealso:
  - module: tokenops.entra.hardware_oath_inventory
  - plugin: tokenops.entra.pskc_tokens
    plugin_type: filter
  - name: Upload hardware OATH tokens in CSV format
    description: Microsoft's description of the file (Manage hardware OATH tokens in Microsoft Entra ID).
    link: https://learn.microsoft.com/en-us/entra/identity/authentication/how-to-mfa-manage-oath-tokens
"""

EXAMPLES = r"""
---
- name: Converge the inventory to the tokens of the file the Entra admin center takes
  tokenops.entra.hardware_oath_inventory:
    tokens: "{{ lookup('ansible.builtin.unvault', 'files/tokens.csv') | tokenops.entra.entra_csv_tokens }}"

- name: Give the tokens of the file to their users, without activating them
  tokenops.entra.hardware_oath_inventory:
    tokens: >-
      {{ lookup('ansible.builtin.unvault', 'files/tokens.csv') | tokenops.entra.entra_csv_tokens
         | map('combine', {'state': 'assigned'}) }}
"""

RETURN = r"""
_value:
  description:
    - One entry per token row, in file order. Keys without a value in the file are left out.
  type: list
  elements: dictionary
  contains:
    user:
      description: The C(upn) column.
      type: string
      returned: always
      sample: amy.masters@contoso.com
    serial_number:
      description: The C(serial number) column.
      type: string
      returned: always
      sample: "1234567"
    secret_key:
      description: The C(secret key) column as Entra ID takes it, base32 in capitals without spaces or padding.
      type: string
      returned: always
    secret_format:
      description: Always V(base32).
      type: string
      returned: always
      sample: base32
    time_interval:
      description: The C(time interval) column, in seconds.
      type: integer
      returned: when the row gives it
      sample: 30
    manufacturer:
      description: The C(manufacturer) column.
      type: string
      returned: when the row gives it
      sample: Contoso
    model:
      description: The C(model) column.
      type: string
      returned: when the row gives it
      sample: Hardware Key
"""

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._files.entra_csv import SeedFileError, parse_entra_csv
from ansible_collections.tokenops.entra.plugins.plugin_utils._filter_errors import filter_error


def entra_csv_tokens(data: t.Any) -> list[dict[str, t.Any]]:
    if not isinstance(data, (str, bytes)):
        raise filter_error("entra_csv_tokens", f"the input must be the text of a CSV file, not a {type(data).__name__}")
    try:
        return parse_entra_csv(data)
    except SeedFileError as exc:  # it names the line and column, never a secret
        raise filter_error("entra_csv_tokens", exc) from None


class FilterModule:
    """Ansible filters: the Entra admin center's hardware token CSV."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"entra_csv_tokens": entra_csv_tokens}
