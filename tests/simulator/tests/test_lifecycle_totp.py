"""The token lifecycle and TOTP verification: codes, drift window, replay, hash function and interval, and the
assignment rules (one user per token, five tokens per user, no guests, unassign before update/delete)."""

from __future__ import annotations

import time

import pytest

from simlib import (
    ADELE,
    ADELE_ACTIVATED,
    AMY,
    DEVICES,
    DIEGO,
    DIEGO_ASSIGNED,
    DIEGO_FAILED,
    GRADY,
    MEGAN,
    MEGAN_TOKENS,
    SHA256_60,
    SPARE,
    TOTP123456,
    Totp,
    assert_graph_error,
    methods_path,
)

HOUR = 3600
ACTIONS = ["assignAndActivate", "assignAndActivateBySerialNumber"]


# Both actions' parameters, positional in every call below: PLR0917 counts arguments, which pyproject.toml leaves to
# reviewers (PLR0913).
def assign_and_activate(api, user, action, token_id, serial, code, **extra):  # noqa: PLR0917
    if action == "assignAndActivate":
        body = {"device": {"id": token_id}, "verificationCode": code, **extra}
    else:
        body = {"serialNumber": serial, "verificationCode": code, **extra}
    return api.graph("POST", f"{methods_path(user)}/{action}", json=body)


def activate(api, user, token_id, code, **extra):
    return api.graph("POST", f"{methods_path(user)}/{token_id}/activate", json={"verificationCode": code, **extra})


def counters(api, token_id):
    return api.token_state(token_id)["activations"]


def status_of(api, token_id):
    device = api.device(token_id)
    return device["status"], (device["assignedTo"] or {}).get("id")


def code_outside_window(totp: Totp, server_now: float, start: float, direction: int = -1) -> str:
    """The code of the step at ``start`` (or the nearest step beyond it) that the window around ``server_now`` does
    not contain by coincidence."""
    valid = totp.window_codes(server_now)
    step = totp.step_of(start)
    while totp.code_for_step(step) in valid:
        step += direction
    return totp.code_for_step(step)


# ------------------------------------------------------------------ accepted / rejected codes
@pytest.mark.parametrize("action", ACTIONS)
def test_correct_code_activates_available_token(api, totp, action):
    assert status_of(api, TOTP123456) == ("available", None)
    response = assign_and_activate(api, AMY, action, TOTP123456, "TOTP123456", totp("TOTP123456").at(api.now()))
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert status_of(api, TOTP123456) == ("activated", AMY)
    assert counters(api, TOTP123456) == {"accepted": 1, "rejected": 0, "replayed": 0}
    assert [m["id"] for m in api.graph("GET", methods_path(AMY)).json()["value"]] == [TOTP123456]


def test_wrong_code_on_activate_sets_failed_activation(api, totp):
    t = totp("TOTP100001")
    response = activate(api, DIEGO, DIEGO_ASSIGNED, t.wrong_code(api.now()))
    assert_graph_error(response, 400, "invalidVerificationCode", "Invalid verification code.")
    assert status_of(api, DIEGO_ASSIGNED) == ("failedActivation", DIEGO)
    assert counters(api, DIEGO_ASSIGNED) == {"accepted": 0, "rejected": 1, "replayed": 0}
    assert activate(api, DIEGO, DIEGO_ASSIGNED, t.at(api.now())).status_code == 204
    assert status_of(api, DIEGO_ASSIGNED) == ("activated", DIEGO)


def test_failed_activation_token_can_be_activated(api, totp):
    assert status_of(api, DIEGO_FAILED) == ("failedActivation", DIEGO)
    assert activate(api, DIEGO, DIEGO_FAILED, totp("TOTP100003").at(api.now())).status_code == 204
    assert status_of(api, DIEGO_FAILED) == ("activated", DIEGO)


@pytest.mark.parametrize("action", ACTIONS)
def test_wrong_code_on_assign_and_activate_assigns_nothing(api, totp, action):
    response = assign_and_activate(api, AMY, action, TOTP123456, "TOTP123456", totp("TOTP123456").wrong_code(api.now()))
    assert_graph_error(response, 400, "invalidVerificationCode")
    assert status_of(api, TOTP123456) == ("available", None)
    assert api.graph("GET", methods_path(AMY)).json()["value"] == []
    assert api.token_state(TOTP123456)["assigned_to"] is None
    assert counters(api, TOTP123456) == {"accepted": 0, "rejected": 1, "replayed": 0}


def test_wrong_code_keeps_activated_token_activated(api, totp):
    response = activate(api, ADELE, ADELE_ACTIVATED, totp("TOTP100002").wrong_code(api.now()))
    assert_graph_error(response, 400, "invalidVerificationCode")
    assert status_of(api, ADELE_ACTIVATED) == ("activated", ADELE)


def test_activate_display_name_only_set_on_success(api, totp):
    t = totp("TOTP100001")
    activate(api, DIEGO, DIEGO_ASSIGNED, t.wrong_code(api.now()), displayName="bad")
    assert api.device(DIEGO_ASSIGNED)["displayName"] is None
    activate(api, DIEGO, DIEGO_ASSIGNED, t.at(api.now()), displayName="good")
    assert api.device(DIEGO_ASSIGNED)["displayName"] == "good"


# ------------------------------------------------------------------ replay
def test_replayed_code_is_rejected(api, totp):
    t = totp("TOTP123456")
    now = api.now()
    step = t.replayable_step(now)
    code = t.code_for_step(step)
    assert assign_and_activate(api, AMY, "assignAndActivate", TOTP123456, None, code).status_code == 204
    assert api.graph("POST", f"{methods_path(AMY)}/{TOTP123456}/deactivate").status_code == 204
    assert status_of(api, TOTP123456) == ("assigned", AMY)
    assert_graph_error(activate(api, AMY, TOTP123456, code), 400, "invalidVerificationCode")
    assert status_of(api, TOTP123456) == ("failedActivation", AMY)
    assert counters(api, TOTP123456) == {"accepted": 1, "rejected": 0, "replayed": 1}
    # The next step's code is new: accepted.
    assert activate(api, AMY, TOTP123456, t.code_for_step(step + 1)).status_code == 204
    assert status_of(api, TOTP123456) == ("activated", AMY)
    assert counters(api, TOTP123456) == {"accepted": 2, "rejected": 0, "replayed": 1}


def test_replay_through_assign_and_activate_by_serial(api, totp):
    t = totp("TOTP123456")
    code = t.code_for_step(t.replayable_step(api.now()))
    assert assign_and_activate(api, AMY, ACTIONS[1], None, "TOTP123456", code).status_code == 204
    replay = assign_and_activate(api, AMY, ACTIONS[1], None, "TOTP123456", code)
    assert_graph_error(replay, 400, "invalidVerificationCode")
    assert status_of(api, TOTP123456) == ("activated", AMY)
    assert counters(api, TOTP123456)["replayed"] == 1


def test_older_code_after_accepted_one_is_replay(api, totp):
    t = totp("TOTP100001")
    step = t.replayable_step(api.now(), gap=2)
    assert activate(api, DIEGO, DIEGO_ASSIGNED, t.code_for_step(step)).status_code == 204
    assert activate(api, DIEGO, DIEGO_ASSIGNED, t.code_for_step(step - 2)).status_code == 400
    assert counters(api, DIEGO_ASSIGNED) == {"accepted": 1, "rejected": 0, "replayed": 1}


# ------------------------------------------------------------------ code format
@pytest.mark.parametrize("code", [123456, 12345.0, ["123456"], {"code": "123456"}, True])
def test_code_must_be_a_json_string(api, totp, code):
    response = activate(api, DIEGO, DIEGO_ASSIGNED, code)
    assert_graph_error(response, 400, "BadRequest", "Edm.String")
    assert status_of(api, DIEGO_ASSIGNED) == ("assigned", DIEGO)
    assert counters(api, DIEGO_ASSIGNED) == {"accepted": 0, "rejected": 0, "replayed": 0}


@pytest.mark.parametrize("code", ["12345", "1234567", "12a456", " 123456", "123 456", "", "١٢٣٤٥٦"])
def test_code_must_be_six_digits(api, code):
    assert_graph_error(activate(api, DIEGO, DIEGO_ASSIGNED, code), 400, "badRequest", "6 digits")
    assert status_of(api, DIEGO_ASSIGNED) == ("assigned", DIEGO)


@pytest.mark.parametrize("body", [{}, {"verificationCode": None}, {"displayName": "x"}])
def test_code_is_required(api, body):
    response = api.graph("POST", f"{methods_path(DIEGO)}/{DIEGO_ASSIGNED}/activate", json=body)
    assert_graph_error(response, 400, "badRequest", "verificationCode")


def test_leading_zero_code(api, totp):
    t = totp("TOTP123456")
    step = t.step_of(api.now()) + 1
    while not t.code_for_step(step).startswith("0"):
        step += 1
    code = t.code_for_step(step)
    api.set_clock(step * t.interval + t.interval / 2 - time.time())
    assert api.admin_state()["clock_offset"] == pytest.approx(api.clock_offset)
    assert t.at(api.now()) == code
    # As a JSON number the leading zero is lost: refused as a type error, nothing recorded.
    response = assign_and_activate(api, AMY, ACTIONS[1], None, "TOTP123456", int(code))
    assert_graph_error(response, 400, "BadRequest")
    assert_graph_error(
        assign_and_activate(api, AMY, ACTIONS[1], None, "TOTP123456", code.lstrip("0")), 400, "badRequest"
    )
    assert counters(api, TOTP123456) == {"accepted": 0, "rejected": 0, "replayed": 0}
    response = assign_and_activate(api, AMY, ACTIONS[1], None, "TOTP123456", code)
    assert response.status_code == 204, response.text
    assert status_of(api, TOTP123456) == ("activated", AMY)


# ------------------------------------------------------------------ hash function and interval
def test_hash_function_and_interval_are_honoured(api, suite_material):
    seed = next(t for t in suite_material["seed"]["tokens"] if t["serial_number"] == "T2-SHA256-60-0001")
    assert (seed["hash_function"], seed["time_interval"]) == ("hmacsha256", 60)
    right = Totp(seed["secret_key"], "hmacsha256", 60)
    now = api.now()
    valid = right.window_codes(now)
    wrong_variants = [
        Totp(seed["secret_key"], "hmacsha1", 60),
        Totp(seed["secret_key"], "hmacsha256", 30),
        Totp(seed["secret_key"], "hmacsha1", 30),
    ]
    for variant in wrong_variants:
        when = now
        while variant.at(when) in valid:  # skip a coincidental match with a valid code
            when += variant.interval
        response = assign_and_activate(api, AMY, ACTIONS[1], None, "T2-SHA256-60-0001", variant.at(when))
        assert_graph_error(response, 400, "invalidVerificationCode")
    assert status_of(api, SHA256_60) == ("available", None)
    assert counters(api, SHA256_60) == {"accepted": 0, "rejected": 3, "replayed": 0}
    response = assign_and_activate(api, AMY, ACTIONS[1], None, "T2-SHA256-60-0001", right.at(api.now()))
    assert response.status_code == 204, response.text
    assert status_of(api, SHA256_60) == ("activated", AMY)


def test_changed_interval_applies_to_verification(api):
    created = api.create_device("INTERVAL-1")
    update = {"timeIntervalInSeconds": 60, "hashFunction": "hmacsha256"}
    assert api.graph("PATCH", f"{DEVICES}/{created['id']}", json=update).status_code == 204
    t = Totp(created["_secret"].upper(), "hmacsha256", 60)
    response = assign_and_activate(api, AMY, "assignAndActivate", created["id"], None, t.at(api.now()))
    assert response.status_code == 204, response.text


# ------------------------------------------------------------------ drift window (clock offset)
@pytest.mark.parametrize("offset_hours", [23, -23])
def test_drift_within_a_day_accepted_for_30s_token(api, totp, offset_hours):
    """The tenant clock runs 23 h ahead of (or behind) the token: still inside the +-1 day activation window."""
    t = totp("TOTP123456")
    api.set_clock(offset_hours * HOUR)
    token_code = t.at(api.now() - offset_hours * HOUR)  # what the token shows: real time
    response = assign_and_activate(api, AMY, ACTIONS[1], None, "TOTP123456", token_code)
    assert response.status_code == 204, response.text
    assert status_of(api, TOTP123456) == ("activated", AMY)


@pytest.mark.parametrize("offset_hours", [25, -25])
def test_drift_beyond_a_day_rejected_for_30s_token(api, totp, offset_hours):
    t = totp("TOTP123456")
    api.set_clock(offset_hours * HOUR)
    server_now = api.now()
    code = code_outside_window(t, server_now, server_now - offset_hours * HOUR, -1 if offset_hours > 0 else 1)
    response = assign_and_activate(api, AMY, ACTIONS[1], None, "TOTP123456", code)
    assert_graph_error(response, 400, "invalidVerificationCode")
    assert status_of(api, TOTP123456) == ("available", None)


def test_code_from_23_hours_ago_accepted(api, totp):
    t = totp("TOTP123456")
    response = assign_and_activate(api, AMY, ACTIONS[1], None, "TOTP123456", t.at(api.now() - 23 * HOUR))
    assert response.status_code == 204, response.text


def test_code_from_25_hours_ago_rejected(api, totp):
    t = totp("TOTP123456")
    code = code_outside_window(t, api.now(), api.now() - 25 * HOUR)
    assert_graph_error(
        assign_and_activate(api, AMY, ACTIONS[1], None, "TOTP123456", code), 400, "invalidVerificationCode"
    )


@pytest.mark.parametrize("offset_hours,accepted", [(47, True), (-47, True), (49, False), (-49, False)])
def test_drift_window_of_60s_token_is_two_days(api, totp, offset_hours, accepted):
    t = totp("T2-SHA256-60-0001")
    api.set_clock(offset_hours * HOUR)
    server_now = api.now()
    real_now = server_now - offset_hours * HOUR
    code = t.at(real_now) if accepted else code_outside_window(t, server_now, real_now, -1 if offset_hours > 0 else 1)
    response = assign_and_activate(api, AMY, ACTIONS[1], None, "T2-SHA256-60-0001", code)
    if accepted:
        assert response.status_code == 204, response.text
    else:
        assert_graph_error(response, 400, "invalidVerificationCode")


# ------------------------------------------------------------------ lifecycle
def test_full_lifecycle(api, totp):
    t = totp("TOTP123456")
    assert api.graph("POST", methods_path(AMY), json={"device": {"id": TOTP123456}}).status_code == 201
    assert status_of(api, TOTP123456) == ("assigned", AMY)
    assert activate(api, AMY, TOTP123456, t.at(api.now())).status_code == 204
    assert status_of(api, TOTP123456) == ("activated", AMY)
    assert api.graph("POST", f"{methods_path(AMY)}/{TOTP123456}/deactivate").status_code == 204
    assert status_of(api, TOTP123456) == ("assigned", AMY)
    assert api.graph("DELETE", f"{methods_path(AMY)}/{TOTP123456}").status_code == 204
    assert status_of(api, TOTP123456) == ("available", None)
    assert api.graph("GET", methods_path(AMY)).json()["value"] == []
    # Back in the inventory: it can be given to someone else.
    assert api.graph("POST", methods_path(DIEGO), json={"device": {"id": TOTP123456}}).status_code == 201
    assert status_of(api, TOTP123456) == ("assigned", DIEGO)


def test_update_and_delete_need_unassigned(api, totp):
    assert (
        assign_and_activate(api, AMY, ACTIONS[0], TOTP123456, None, totp("TOTP123456").at(api.now())).status_code == 204
    )
    assert_graph_error(api.graph("PATCH", f"{DEVICES}/{TOTP123456}", json={"displayName": "x"}), 400, "badRequest")
    assert_graph_error(api.graph("DELETE", f"{DEVICES}/{TOTP123456}"), 400, "badRequest")
    assert api.graph("POST", f"{methods_path(AMY)}/{TOTP123456}/deactivate").status_code == 204
    assert_graph_error(api.graph("DELETE", f"{DEVICES}/{TOTP123456}"), 400, "badRequest")
    assert api.graph("DELETE", f"{methods_path(AMY)}/{TOTP123456}").status_code == 204
    assert api.graph("PATCH", f"{DEVICES}/{TOTP123456}", json={"displayName": "x"}).status_code == 204
    assert api.graph("DELETE", f"{DEVICES}/{TOTP123456}").status_code == 204


# ------------------------------------------------------------------ assignment rules
def test_token_belongs_to_one_user(api, totp):
    response = api.graph("POST", methods_path(AMY), json={"device": {"id": DIEGO_ASSIGNED}})
    assert_graph_error(response, 409, "conflict", "already assigned to another user")
    for action in ACTIONS:
        response = assign_and_activate(api, AMY, action, DIEGO_ASSIGNED, "TOTP100001", totp("TOTP100001").at(api.now()))
        assert_graph_error(response, 409, "conflict", "another user")
    assert status_of(api, DIEGO_ASSIGNED) == ("assigned", DIEGO)
    assert counters(api, DIEGO_ASSIGNED) == {"accepted": 0, "rejected": 0, "replayed": 0}


def test_assigning_twice_to_the_same_user(api):
    response = api.graph("POST", methods_path(DIEGO), json={"device": {"id": DIEGO_ASSIGNED}})
    assert_graph_error(response, 409, "conflict", "already assigned to this user")


def test_five_method_limit(api, totp):
    assert len(api.graph("GET", methods_path(MEGAN)).json()["value"]) == 5
    assert_graph_error(
        api.graph("POST", methods_path(MEGAN), json={"device": {"id": SPARE}}), 400, "badRequest", "maximum of 5"
    )
    for action in ACTIONS:
        response = assign_and_activate(api, MEGAN, action, SPARE, "SPARE-0001", totp("SPARE-0001").at(api.now()))
        assert_graph_error(response, 400, "badRequest", "maximum of 5")
    assert status_of(api, SPARE) == ("available", None)
    assert len(api.graph("GET", methods_path(MEGAN)).json()["value"]) == 5
    assert api.graph("DELETE", f"{methods_path(MEGAN)}/{MEGAN_TOKENS[4]}").status_code == 204
    assert api.graph("POST", methods_path(MEGAN), json={"device": {"id": SPARE}}).status_code == 201
    assert_graph_error(
        api.graph("POST", methods_path(MEGAN), json={"device": {"id": MEGAN_TOKENS[4]}}),
        400,
        "badRequest",
        "maximum of 5",
    )


def test_no_guest_assignment(api, totp):
    guest = "grady_fabrikam.com#EXT#@contoso.onmicrosoft.com"
    assert_graph_error(
        api.graph("POST", methods_path(guest), json={"device": {"id": SPARE}}), 400, "badRequest", "guest"
    )
    for action in ACTIONS:
        response = assign_and_activate(api, guest, action, SPARE, "SPARE-0001", totp("SPARE-0001").at(api.now()))
        assert_graph_error(response, 400, "badRequest", "guest")
    response = api.graph(
        "POST",
        DEVICES,
        json={
            "serialNumber": "G-1",
            "manufacturer": "C",
            "model": "M",
            "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            "timeIntervalInSeconds": 30,
            "assignTo": {"id": GRADY},
        },
    )
    assert_graph_error(response, 400, "badRequest", "guest")
    assert status_of(api, SPARE) == ("available", None)
    assert next(u for u in api.admin_state()["users"] if u["id"] == GRADY)["hardware_oath_methods"] == []
