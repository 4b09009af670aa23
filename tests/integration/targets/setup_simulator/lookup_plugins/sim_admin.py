# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A POST to the simulator's admin API (``/_admin/...``), made on the controller: a ``uri`` task would start a module
process for it, and every scenario resets the simulator. Verified TLS against the simulator's CA, as every call.

    lookup('sim_admin', sim.admin_url ~ '/reset', ca_path=sim.ca_bundle)                      # expects 204
    lookup('sim_admin', sim.admin_url ~ '/faults', body=sim_faults, ca_path=sim.ca_bundle, status=200)

Available once the role setup_simulator is loaded (Ansible adds a role's lookup_plugins/ when it loads the role).
Returns the answer's status."""

from __future__ import annotations

import json
from urllib.error import HTTPError

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.module_utils.urls import open_url
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: sim_admin
short_description: POST to the simulator's admin API from the controller
description:
  - Sends one POST to the local simulator's admin API, with an optional JSON body, and fails unless it answers with
    the expected status.
options:
  _terms:
    description: The admin URL.
    required: true
  ca_path:
    description: The simulator's CA bundle.
    type: path
    required: true
  body:
    description: The JSON body.
    type: raw
  status:
    description: The status expected.
    type: int
    default: 204
"""


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        body = self.get_option("body")
        expected = self.get_option("status")
        statuses = []
        for url in terms:
            try:
                answer = open_url(
                    url,
                    method="POST",
                    data=None if body is None else json.dumps(body, cls=AnsibleJSONEncoder),
                    headers={"Content-Type": "application/json"} if body is not None else {},
                    ca_path=self.get_option("ca_path"),
                    validate_certs=True,
                    timeout=30,
                )
                status = answer.status
            except HTTPError as exc:
                status = exc.code
            if status != expected:
                raise AnsibleLookupError(f"POST {url}: the simulator answered {status}, not {expected}")
            statuses.append(status)
        return statuses
