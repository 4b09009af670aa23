# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The simulator's request log and state, read and sorted on the controller for observe.yml: one GET of each over
verified TLS, sorted here rather than by Jinja filters in the task (every scenario observes, most more than once).

    lookup('sim_observe', sim.admin_url, since=sim_since | default(0), ca_path=sim.ca_bundle)

Available once the role setup_simulator is loaded (Ansible adds a role's lookup_plugins/ when it loads the role).
Returns a dictionary: ``log`` (every request logged after ``since``), ``graph``, ``writes``, ``identity`` and ``mi``
(those of each kind; ``writes``: the Graph requests with ``write`` set), ``state``, ``tokens`` (the state's tokens by
serial number) and ``last_seq`` (the log's last sequence number, or ``since`` when nothing was logged)."""

from __future__ import annotations

import json

from ansible.errors import AnsibleLookupError
from ansible.module_utils.urls import open_url
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: sim_observe
short_description: The simulator's request log and state, sorted
description:
  - Reads the local simulator's request log (after a sequence number) and its state from its admin API, and sorts
    the requests by kind.
options:
  _terms:
    description: The admin URL.
    required: true
  ca_path:
    description: The simulator's CA bundle.
    type: path
    required: true
  since:
    description: Only the requests logged after this sequence number.
    type: int
    default: 0
"""


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        since = self.get_option("since")
        return [self._observe(url, since) for url in terms]

    def _get(self, url):
        try:
            answer = open_url(url, ca_path=self.get_option("ca_path"), validate_certs=True, timeout=30)
            return json.loads(answer.read())
        except Exception as exc:  # pylint: disable=broad-exception-caught  # raised again as a lookup error
            raise AnsibleLookupError(f"GET {url}: {exc}") from exc

    def _observe(self, admin_url, since):
        log = self._get(f"{admin_url}/requests?since={since}")["requests"]
        state = self._get(f"{admin_url}/state")
        graph = [entry for entry in log if entry["kind"] == "graph"]
        return {
            "log": log,
            "graph": graph,
            "writes": [entry for entry in graph if entry.get("write")],
            "identity": [entry for entry in log if entry["kind"] == "identity"],
            "mi": [entry for entry in log if entry["kind"] == "managed_identity"],
            "state": state,
            "tokens": {token["serial_number"]: token for token in state["tokens"]},
            "last_seq": max([entry["seq"] for entry in log] + [int(since)]),
        }
