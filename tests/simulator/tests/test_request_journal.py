"""What the request log tells about each Graph request beyond its answer (docs/simulator.md, "Admin API"): the
sign-in that sent it (``session``), the tokens a write addressed (``targets``), the changes it made (``effects``) and
the result of its verification code (``verification``); and the tenant-wide count of verified codes in the state."""

from __future__ import annotations

from simlib import (
    AMY,
    AUTOMATION,
    AUTOMATION_SECRET,
    DEVICES,
    DIEGO,
    DIEGO_ASSIGNED,
    LEE,
    SPARE,
    TOTP123456,
    UNKNOWN_ID,
    methods_path,
)


def last_entry(api) -> dict:
    return api.requests_log()[-1]


def state_of(status: str, holder: str | None, model: str = "Hardware Key") -> dict:
    return {
        "status": status,
        "holder": holder,
        "display_name": None,
        "manufacturer": "Contoso",
        "model": model,
        "hash_function": "hmacsha1",
        "time_interval": 30,
    }


def test_session_names_the_sign_in(api):
    first, second = api.token(AUTOMATION, secret=AUTOMATION_SECRET), api.token(AUTOMATION, secret=AUTOMATION_SECRET)
    api.graph("GET", DEVICES, token=first)
    api.graph("GET", DEVICES, token=first)
    api.graph("GET", DEVICES, token=second)
    api.graph("GET", DEVICES, token="")
    one, again, other, anonymous = [e for e in api.requests_log() if e["kind"] == "graph"]
    assert one["session"] and one["session"] == again["session"]
    assert other["session"] and other["session"] != one["session"]
    assert "session" not in anonymous  # refused before anyone was known
    assert one["session"] not in (first, second)  # an id of the token, never the token


def test_session_of_a_request_answered_by_a_fault(api):
    token = api.token(AUTOMATION, secret=AUTOMATION_SECRET)
    api.faults({"rules": [{"match": {"path": SPARE}, "count": 2, "action": {"type": "status", "status": 429}}]})
    api.graph("GET", f"{DEVICES}/{SPARE}", token=token)  # the token's first request, answered by the fault
    api.graph("GET", f"{DEVICES}/{SPARE}", token=token)
    api.graph("GET", f"{DEVICES}/{SPARE}", token=token)
    batch = {"requests": [{"id": "1", "method": "GET", "url": f"{DEVICES}/{SPARE}"}]}
    api.faults({"rules": [{"match": {"path": SPARE}, "count": 1, "action": {"type": "status", "status": 503}}]})
    api.graph("POST", "/$batch", json=batch, token=token)
    entries = [e for e in api.requests_log() if e["kind"] == "graph"]
    assert [e["status"] for e in entries] == [429, 429, 200, 503, 200]  # the batch item, then its envelope
    assert len({e["session"] for e in entries}) == 1


def test_reads_have_no_journal(api):
    api.graph("GET", f"{DEVICES}/{SPARE}")
    entry = last_entry(api)
    assert not {"targets", "effects", "verification"} & set(entry)


def test_assign_and_activate_accepted(api, totp):
    code = totp("TOTP123456").at(api.now())
    response = api.graph(
        "POST", f"{methods_path(AMY)}/assignAndActivate", json={"device": {"id": TOTP123456}, "verificationCode": code}
    )
    assert response.status_code == 204, response.text
    entry = last_entry(api)
    assert entry["targets"] == [{"token": TOTP123456, "serial_number": "TOTP123456"}]
    assert entry["verification"] == "accepted"
    assert entry["effects"] == [
        {
            "token": TOTP123456,
            "serial_number": "TOTP123456",
            "before": state_of("available", None),
            "after": state_of("activated", AMY),
        }
    ]


def test_replayed_code_is_marked_and_changes_nothing(api, totp):
    token = totp("TOTP123456")
    code = token.code_for_step(token.replayable_step(api.now()))
    body = {"serialNumber": "totp123456", "verificationCode": code}
    path = f"{methods_path(AMY)}/assignAndActivateBySerialNumber"
    assert api.graph("POST", path, json=body).status_code == 204
    refused = api.graph("POST", f"{methods_path(AMY)}/{TOTP123456}/activate", json={"verificationCode": code})
    assert refused.status_code == 400
    entry = last_entry(api)
    assert (entry["verification"], entry["error_code"]) == ("replayed", "invalidVerificationCode")
    assert entry["targets"] == [{"token": TOTP123456, "serial_number": "TOTP123456"}]
    assert "effects" not in entry  # still activated for Amy
    assert api.admin_state()["activations"] == {"accepted": 1, "rejected": 0, "replayed": 1}


def test_rejected_code_records_the_failed_activation(api, totp):
    wrong = totp("TOTP100001").wrong_code(api.now())
    response = api.graph("POST", f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}/activate", json={"verificationCode": wrong})
    assert response.status_code == 400
    entry = last_entry(api)
    assert entry["verification"] == "rejected"
    assert [(e["before"]["status"], e["after"]["status"]) for e in entry["effects"]] == [
        ("assigned", "failedActivation")
    ]


def test_create_assign_unassign_delete(api):
    created = api.create_device("JOURNAL-0001")
    create = last_entry(api)
    assert create["targets"] == [{"token": None, "serial_number": "JOURNAL-0001"}]
    assert [(e["token"], e["before"], e["after"]["status"]) for e in create["effects"]] == [
        (created["id"], None, "available")
    ]
    assert api.graph("POST", methods_path(LEE), json={"device": {"id": created["id"]}}).status_code == 201
    assign = last_entry(api)
    assert assign["targets"] == [{"token": created["id"], "serial_number": "JOURNAL-0001"}]
    assert [(e["before"]["holder"], e["after"]["holder"], e["after"]["status"]) for e in assign["effects"]] == [
        (None, LEE, "assigned")
    ]
    assert api.graph("DELETE", f"{methods_path(LEE)}/{created['id']}").status_code == 204
    unassign = last_entry(api)
    assert [(e["before"]["holder"], e["after"]["holder"]) for e in unassign["effects"]] == [(LEE, None)]
    assert api.graph("DELETE", f"{DEVICES}/{created['id']}").status_code == 204
    delete = last_entry(api)
    assert delete["targets"] == [{"token": created["id"], "serial_number": "JOURNAL-0001"}]
    assert [(e["serial_number"], e["after"]) for e in delete["effects"]] == [("JOURNAL-0001", None)]


def test_refused_writes_name_their_target_without_effect(api):
    api.create_device("JOURNAL-0002")
    again = api.graph(
        "POST",
        DEVICES,
        json={
            "serialNumber": "JOURNAL-0002",
            "manufacturer": "Contoso",
            "model": "Test Key",
            "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            "timeIntervalInSeconds": 30,
        },
    )
    assert again.status_code == 409
    conflict = last_entry(api)
    assert conflict["targets"] == [{"token": None, "serial_number": "JOURNAL-0002"}]
    assert "effects" not in conflict
    assert api.graph("DELETE", f"{methods_path(AMY)}/{UNKNOWN_ID}").status_code == 404
    assert last_entry(api)["targets"] == [{"token": UNKNOWN_ID, "serial_number": None}]


def test_bulk_creation_names_every_item(api):
    items = [
        {
            "@contentId": str(n),
            "serialNumber": f"JOURNAL-1{n:03d}",
            "manufacturer": "Contoso",
            "model": "Bulk Key",
            "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            "timeIntervalInSeconds": 30,
        }
        for n in range(3)
    ]
    response = api.graph("PATCH", DEVICES, json={"@context": "#$delta", "value": items})
    assert response.status_code == 201, response.text
    entry = last_entry(api)
    assert [t["serial_number"] for t in entry["targets"]] == ["JOURNAL-1000", "JOURNAL-1001", "JOURNAL-1002"]
    assert [(e["serial_number"], e["before"], e["after"]["model"]) for e in entry["effects"]] == [
        (f"JOURNAL-1{n:03d}", None, "Bulk Key") for n in range(3)
    ]


def test_activation_totals_outlive_deleted_tokens_until_a_reset(api, totp):
    code = totp("SPARE-0001").at(api.now())
    path = f"{methods_path(AMY)}/assignAndActivate"
    assert api.graph("POST", path, json={"device": {"id": SPARE}, "verificationCode": code}).status_code == 204
    assert api.graph("DELETE", f"{methods_path(AMY)}/{SPARE}").status_code == 204
    assert api.graph("DELETE", f"{DEVICES}/{SPARE}").status_code == 204
    assert api.admin_state()["activations"] == {"accepted": 1, "rejected": 0, "replayed": 0}
    api.reset()
    assert api.admin_state()["activations"] == {"accepted": 0, "rejected": 0, "replayed": 0}


def test_handled_orders_every_graph_request(api):
    api.faults({"rules": [{"name": "busy", "match": {"path": SPARE}, "action": {"type": "status", "status": 503}}]})
    api.graph("GET", DEVICES)
    api.graph("GET", f"{DEVICES}/{SPARE}")  # answered by the fault, never processed
    api.graph("DELETE", f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}")
    entries = [e for e in api.requests_log() if e["kind"] == "graph"]
    assert [e["status"] for e in entries] == [200, 503, 204]
    numbers = [e["handled"] for e in entries]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
