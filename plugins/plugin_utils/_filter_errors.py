# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change in any release.

"""The one form of the collection's filter errors (controller side)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def filter_error(name: str, problem: object) -> AnsibleFilterError:
    """``tokenops.entra.<name>: <problem>``: the filter that refused, then why. The problem names a line, a column, a
    key package or an option, never a secret's value."""
    return AnsibleFilterError(f"tokenops.entra.{name}: {problem}")
