# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hardware OATH tokens and users as the modules see them (_domain/tokens.py): the views of Graph's objects."""

from __future__ import annotations

from ansible_collections.tokenops.entra.plugins.module_utils._domain.tokens import TokenView, UserView
from ansible_collections.tokenops.entra.plugins.module_utils._planning.assignment import assignment_state
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import ADELE as OTHER
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import AMY as THIS
from ansible_collections.tokenops.entra.tests.unit.plugins.oath_data import DEVICE_ID, NAME, SERIAL


# ---------------------------------------------------------------------------------------------------- views
def test_token_view_from_graph():
    token = TokenView.from_graph(
        {
            "id": DEVICE_ID,
            "serialNumber": SERIAL,
            "status": "activated",
            "displayName": NAME,
            "hashFunction": "hmacsha256",
            "timeIntervalInSeconds": 60,
            "assignedTo": {"id": THIS.id.upper(), "displayName": "Amy Masters"},
        }
    )
    assert token == TokenView(
        id=DEVICE_ID,
        serial_number=SERIAL,
        status="activated",
        assigned_to_id=THIS.id,
        assigned_to_name="Amy Masters",
        display_name=NAME,
        hash_function="hmacsha256",
        time_interval=60,
    )
    assert token.label == f"token {SERIAL}"


def test_token_view_from_method_is_held_by_the_user_whose_method_it_is():
    method = {
        "id": DEVICE_ID,
        "createdDateTime": "2026-01-01T00:00:00Z",
        "device": {"id": "ignored", "serialNumber": SERIAL, "status": "assigned", "assignedTo": None},
    }
    token = TokenView.from_method(method, THIS)
    assert (token.id, token.serial_number, token.status) == (DEVICE_ID, SERIAL, "assigned")
    assert (token.assigned_to_id, token.assigned_to_name) == (THIS.id, THIS.display_name)
    assert TokenView.from_method(method, None).assigned_to_id is None
    assert method["device"]["assignedTo"] is None  # the answer is not changed


def test_token_view_from_method_keeps_the_holder_graph_names():
    method = {
        "id": DEVICE_ID,
        "device": {"serialNumber": SERIAL, "assignedTo": {"id": OTHER.id, "displayName": "Adele"}},
    }
    token = TokenView.from_method(method, THIS)
    assert (token.assigned_to_id, token.assigned_to_name) == (OTHER.id, "Adele")


def test_token_view_from_graph_defaults():
    token = TokenView.from_graph(
        {"id": DEVICE_ID, "assignedTo": None, "hashFunction": None, "timeIntervalInSeconds": None}
    )
    assert token == TokenView(
        id=DEVICE_ID,
        serial_number="",
        status="",
        assigned_to_id=None,
        assigned_to_name=None,
        display_name=None,
        hash_function="hmacsha1",
        time_interval=30,
    )
    assert token.label == f"token {DEVICE_ID}"
    assert assignment_state(token) == {
        "serial_number": "",
        "device_id": DEVICE_ID,
        "assigned_to": None,
        "status": "",
        "display_name": None,
    }


def test_user_view_from_graph():
    user = UserView.from_graph(
        {
            "id": THIS.id.upper(),
            "userPrincipalName": "amy.masters@contoso.com",
            "displayName": "Amy Masters",
            "userType": "Member",
        }
    )
    assert user == THIS
    assert UserView.from_graph({"id": "ABC"}) == UserView(id="abc", user_principal_name="ABC")


def test_a_token_with_a_holder_is_assigned_whatever_its_status_says():
    """Entra's documentation shows a token created with assignTo as available, with assignedTo filled in."""
    device = {
        "id": DEVICE_ID,
        "serialNumber": SERIAL,
        "status": "available",
        "assignedTo": {"id": THIS.id.upper(), "displayName": THIS.display_name},
    }
    view = TokenView.from_graph(device)
    assert (view.status, view.assigned_to_id) == ("assigned", THIS.id)
    assert TokenView.from_graph({**device, "assignedTo": None}).status == "available"
    assert TokenView.from_graph({**device, "status": "activated"}).status == "activated"


def test_token_view_from_graph_unwraps_a_method_s_device():
    device = {"id": DEVICE_ID, "serialNumber": "S1", "status": "available", "assignedTo": None}
    wrapped = {"@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethod", "id": DEVICE_ID, "device": device}
    assert TokenView.from_graph(wrapped) == TokenView.from_graph(device)
    without_inner_id = {**wrapped, "device": {k: v for k, v in device.items() if k != "id"}}
    assert TokenView.from_graph(without_inner_id).id == DEVICE_ID
