# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Forgets the codes the modules sent (the ledger files of the default ``run_state_dir``), on the controller. The
simulator's reset gives every token back the state of the seed, with no time step used; a ledger kept from an
earlier scenario would make the next one wait for the next step, or read a token again, for codes this tenant
never saw.

    lookup('sim_forget_codes')

Available once the role setup_simulator is loaded. Returns how many ledger files were removed."""

from __future__ import annotations

import glob
import os

from ansible.plugins.lookup import LookupBase

from ansible_collections.tokenops.entra.plugins.module_utils._common.run_state import default_run_state_dir

DOCUMENTATION = r"""
name: sim_forget_codes
short_description: forget the ledger of the codes sent, after the simulator's reset
description:
  - Removes the ledger files (C(codes-*.jsonl)) of the modules' default run state directory on the controller.
"""


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        removed = 0
        for path in glob.glob(os.path.join(default_run_state_dir(), "codes-*.jsonl")):
            os.remove(path)
            removed += 1
        return [removed]
