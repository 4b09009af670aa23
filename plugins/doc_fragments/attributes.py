# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The attributes every module documents: what each means. Use with one of the fragments below, which only say
    # how far a module supports them.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
"""

    # A module that changes the tenant.
    WRITES = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the current state and makes no write request.
  diff_mode:
    support: full
  idempotent:
    support: full
"""

    # A module that only reads.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This module only reads; it runs the same in check mode.
  diff_mode:
    support: N/A
    details:
      - This module only reads.
  idempotent:
    support: full
"""

    ACTIONGROUP_GRAPH = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/tokenops.entra.graph) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - tokenops.entra.graph
"""
