# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test data shared by the unit tests: the demo tenant's users and its TOTP123456 token."""

from __future__ import annotations

from ansible_collections.tokenops.entra.plugins.module_utils._hardware_oath import UserView

SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238 SHA-1 seed
SERIAL = "TOTP123456"
DEVICE_ID = "6f3e7c1a-2b4d-4e8f-9a0b-1c2d3e4f5a6b"
AMY = UserView(id="e55cb360-e3ee-4757-bdd2-04b1e5a00e32", user_principal_name="amy.masters@contoso.com",
               display_name="Amy Masters", user_type="Member")
ADELE = UserView(id="0a1b2c3d-0000-4000-8000-00000000abcd", user_principal_name="adele.vance@contoso.com",
                 display_name="Adele Vance", user_type="Member")
