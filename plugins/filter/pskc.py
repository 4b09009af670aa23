# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: pskc_tokens
short_description: Turn a PSKC seed file into token entries
version_added: 1.0.0
description:
  - Reads a PSKC (RFC 6030) file, the seed file token vendors ship with hardware tokens, and returns its keys as
    entries of the O(tokenops.entra.hardware_oath_inventory#module:tokens) option of
    M(tokenops.entra.hardware_oath_inventory).
  - PSKC files name no users. Add O(tokenops.entra.hardware_oath_inventory#module:tokens[].user) (or a
    O(tokenops.entra.hardware_oath_inventory#module:tokens[].state) that needs none) to each entry before giving
    them to the module.
  - Secrets encrypted with a pre-shared key (for example AES-128-CBC with an HMAC-SHA1 MAC, as in RFC 6030 section
    6.1) are decrypted with O(preshared_key); secrets encrypted with a key derived from a password (PBKDF2, RFC 6030
    section 6.2) with O(password). Give one of them, not both.
  - "Every encrypted value must come with its MAC (C(ValueMAC)), which is checked: a value without one (unless its
    algorithm is a key wrap, which checks what it unwraps), a value both plain and encrypted, and a plain secret in a
    file whose values are encrypted are refused, as they could have been changed unnoticed."
  - "Each key is checked, and the first problem is refused naming its key package (counted from 1) and serial
    number: a key that is not TOTP (Entra ID takes TOTP hardware tokens only; HOTP keys are refused), codes of other
    than 6 decimal digits, a time interval other than 30 or 60 seconds (none given: 30), an algorithm suite other than
    HMAC-SHA1 or HMAC-SHA256 (none given: HMAC-SHA1), a secret too short to compute activation codes from (at least
    112 bits), a missing serial number or secret, a serial number appearing twice, and a secret the key does not
    decrypt."
  - "The file is vetted before any XML library reads it, whichever is installed (lxml or Python's ElementTree): it
    must be UTF-8, or UTF-16 with a byte order mark (a file declaring another encoding, such as UTF-7 or ISO-8859-1,
    is refused); a document type declaration (C(<!DOCTYPE), C(<!ENTITY)) is refused, as PSKC has none, so no DTD is
    loaded and no entity is expanded or fetched; the file may be at most 16 MiB, nest elements at most 32 deep and
    hold at most 500,000 elements. python-pskc then reads a clean UTF-8 copy of what was vetted. A file's key
    derivation may ask for at most 10,000,000 PBKDF2 iterations."
  - No error message ever holds a secret, the pre-shared key or the password; an error in the file names its line or
    its key package and serial number.
  - The result holds the secret keys. Keep the file in Ansible Vault, and set C(no_log) on tasks that show the
    result.
requirements:
  - python-pskc (on the controller)
options:
  _input:
    description:
      - The text of the PSKC file, for example from P(ansible.builtin.file#lookup) or P(ansible.builtin.unvault#lookup).
    type: string
    required: true
  preshared_key:
    description:
      - The pre-shared key that decrypts the file's secrets, in hex (spaces, colons and dashes are ignored). Needed
        when the file's secrets are encrypted with a pre-shared key.
      - For a file encrypted with a key derived from a password, the derived key works too.
      - Mutually exclusive with O(password).
    type: string
  password:
    description:
      - The password the key that encrypts the file's secrets is derived from (PBKDF2, RFC 6030 section 6.2), as the
        vendor sent it. Needed when the file's secrets are encrypted with a password.
      - Keep it in Ansible Vault. It never appears in an error message.
      - Mutually exclusive with O(preshared_key).
    type: string
author:
  - tokenops developers (@tokenops)
seealso:
  - module: tokenops.entra.hardware_oath_inventory
  - plugin: tokenops.entra.entra_csv_tokens
    plugin_type: filter
  - name: RFC 6030
    description: Portable Symmetric Key Container (PSKC).
    link: https://www.rfc-editor.org/rfc/rfc6030.html
"""

EXAMPLES = r"""
---
- name: Import the tokens of the vendor's seed file, held by nobody yet
  tokenops.entra.hardware_oath_inventory:
    tokens: >-
      {{ lookup('ansible.builtin.file', 'token2-batch-17.pskc')
         | tokenops.entra.pskc_tokens(preshared_key=vault_token2_transport_key)
         | map('combine', {'state': 'available'}) }}

- name: Pair each token of the seed file with its user (holders maps serial numbers to users)
  ansible.builtin.set_fact:
    declared: "{{ declared | default([]) + [item | combine({'user': holders[item.serial_number]})] }}"
  loop: >-
    {{ lookup('ansible.builtin.file', 'token2-batch-17.pskc')
       | tokenops.entra.pskc_tokens(preshared_key=vault_token2_transport_key) }}
  loop_control:
    label: "{{ item.serial_number }}"  # the item holds the secret
  no_log: true
  vars:
    holders:
      T2-0001: amy.masters@contoso.com
      T2-0002: ben.lee@contoso.com

- name: Converge the inventory to them
  tokenops.entra.hardware_oath_inventory:
    tokens: "{{ declared }}"

- name: Import the tokens of a seed file encrypted with a password (vault_token2_pskc_password is in Ansible Vault)
  tokenops.entra.hardware_oath_inventory:
    tokens: >-
      {{ lookup('ansible.builtin.file', 'token2-batch-18.pskc')
         | tokenops.entra.pskc_tokens(password=vault_token2_pskc_password)
         | map('combine', {'state': 'available'}) }}
"""

RETURN = r"""
_value:
  description:
    - One entry per key, in file order. Keys without a value in the file are left out.
  type: list
  elements: dictionary
  contains:
    serial_number:
      description: The serial number of the key's device (C(DeviceInfo/SerialNo)).
      type: string
      returned: always
      sample: T2-0001
    secret_key:
      description: The secret, base32 in capitals without padding.
      type: string
      returned: always
    secret_format:
      description: Always V(base32).
      type: string
      returned: always
      sample: base32
    time_interval:
      description: The time interval in seconds, V(30) when the file gives none.
      type: integer
      returned: always
      sample: 30
    hash_function:
      description: The HMAC hash, from the algorithm suite; V(hmacsha1) when the file gives none.
      type: string
      returned: always
      sample: hmacsha1
    manufacturer:
      description: The manufacturer (C(DeviceInfo/Manufacturer)).
      type: string
      returned: when the file gives it
      sample: Token2
    model:
      description: The model (C(DeviceInfo/Model)).
      type: string
      returned: when the file gives it
      sample: C202
"""

import typing as t

from ansible_collections.tokenops.entra.plugins.module_utils._files.entra_csv import SeedFileError
from ansible_collections.tokenops.entra.plugins.module_utils._files.pskc_seeds import parse_pskc
from ansible_collections.tokenops.entra.plugins.plugin_utils._filter_errors import filter_error


def pskc_tokens(data: t.Any, preshared_key: t.Any = None, password: t.Any = None) -> list[dict[str, t.Any]]:
    if not isinstance(data, (str, bytes)):
        raise filter_error("pskc_tokens", f"the input must be the text of a PSKC file, not a {type(data).__name__}")
    if preshared_key is not None and not isinstance(preshared_key, str):
        raise filter_error(
            "pskc_tokens", f"preshared_key must be a string of hex, not a {type(preshared_key).__name__}"
        )
    if password is not None and not isinstance(password, str):
        raise filter_error("pskc_tokens", f"password must be a string, not a {type(password).__name__}")
    try:
        return parse_pskc(data, preshared_key, password)
    except SeedFileError as exc:  # it names the line or the key package, never a secret, the key or the password
        raise filter_error("pskc_tokens", exc) from None


class FilterModule:
    """Ansible filters: PSKC seed files."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"pskc_tokens": pskc_tokens}
