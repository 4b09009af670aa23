# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fixtures hold together (every operation names its page, its users in the code, a request and an answer of
known shapes; every example fits its own shape), and the comparison says what it should, without values it must not
show."""

from __future__ import annotations

import re

import conformance_check
import conformance_shapes
import pytest

FIXTURES = conformance_shapes.Fixtures.load()
MODULE_UTILS = conformance_shapes.FIXTURES.parents[3] / "plugins" / "module_utils"
SHAPE_KEYS = {
    "type",
    "ref",
    "keys",
    "items",
    "optional",
    "const",
    "enum",
    "pattern",
    "pattern_text",
    "example",
    "note",
}


def walk(spec, where):
    """Every shape inside ``spec`` (refs followed once, by name), with where it is."""
    yield where, spec
    if isinstance(spec, dict):
        for key, sub in (spec.get("keys") or {}).items():
            yield from walk(sub, f"{where}.{key}")
        if "items" in spec:
            yield from walk(spec["items"], f"{where}[]")


def shapes_of_fixtures():
    for name, spec in FIXTURES.shapes.items():
        yield from walk(spec, f"shapes.{name}")
    for name in FIXTURES.operations:
        op = FIXTURES.operation(name)
        if isinstance(op.get("request"), dict):
            yield from walk(op["request"], f"{name}.request")
        if isinstance(op["answer"].get("body"), dict):
            yield from walk(op["answer"]["body"], f"{name}.answer.body")
        for header, spec in (op["answer"].get("headers") or {}).items():
            yield from walk(spec, f"{name}.answer.headers.{header}")


@pytest.mark.parametrize("where, spec", list(shapes_of_fixtures()), ids=lambda value: str(value)[:60])
def test_every_shape_is_well_formed(where, spec):
    if isinstance(spec, str):
        assert set(spec.split("|")) <= conformance_shapes.TYPES, where
        return
    assert set(spec) <= SHAPE_KEYS, where
    assert "type" in spec or "ref" in spec, where
    if "ref" in spec:
        assert spec["ref"] in FIXTURES.shapes, where
    resolved = FIXTURES.resolve(spec)
    assert set(FIXTURES.types(resolved)) <= conformance_shapes.TYPES, where
    for key in ("const", "example"):
        if key in spec:
            assert FIXTURES.check({"type": resolved["type"]}, spec[key], where) == [], where
    if "pattern" in spec:
        re.compile(spec["pattern"])
        assert "pattern_text" in spec, where


@pytest.mark.parametrize("name", sorted(FIXTURES.operations))
def test_every_operation_names_its_source_and_users(name):
    op = FIXTURES.operation(name)
    assert op["basis"] in conformance_shapes.BASES
    assert op["title"] and op["method"] and op["path"]
    assert op["source"], "the page (or metadata) it comes from"
    for source in op["source"]:
        assert re.fullmatch(r"(api-reference/beta/api|concepts)/[a-z0-9-]+\.md", source) or source.startswith(
            "msgraph-beta-sdk-python: msgraph_beta/"
        ), source
    for user in op["used_by"]:
        path = user.split()[0]
        assert path == "tests" or (MODULE_UTILS / path).is_file(), user
    assert ("request" in op) != ("request_like" in op)
    if "request_like" in op:
        assert op["request_like"] in FIXTURES.operations


@pytest.mark.parametrize("name", sorted(FIXTURES.operations))
def test_every_example_fits_its_own_shape(name):
    status, headers, body = FIXTURES.example_answer(name)
    has_body = body is not None
    assert FIXTURES.check_answer(name, status, headers, body, has_body=has_body) == []
    assert FIXTURES.check_request(name, FIXTURES.example_request(name)) == []


# ---------------------------------------------------------------------- what a comparison says
def lines(name, status, body, headers=None):
    found = FIXTURES.check_answer(name, status, headers or {}, body, has_body=body is not None)
    return [difference.line() for difference in found]


def test_a_flat_bulk_answer():
    device = FIXTURES.example({"ref": "device"})
    assert lines("bulk_create", 200, {"@context": "#$delta", "value": [{"@contentId": "1", **device}]}) == [
        "bulk_create: status: documented: 201; your tenant: 200",
        'bulk_create: body.value[].@odata.type: documented: "#microsoft.graph.hardwareOathAuthenticationMethod"; '
        "your tenant: missing",
        "bulk_create: body.value[].device: documented: object; your tenant: missing",
    ]


def test_types_enums_and_an_answer_without_its_body():
    device = {**FIXTURES.example({"ref": "device"}), "timeIntervalInSeconds": "30", "status": "lost"}
    assert lines("get_token", 200, device) == [
        "get_token: body.timeIntervalInSeconds: documented: integer; your tenant: string",
        'get_token: body.status: documented: one of "available", "assigned", "activated", "failedActivation", '
        '"unknownFutureValue"; your tenant: "lost"',
    ]
    assert lines("get_token", 204, None) == [
        "get_token: status: documented: 200; your tenant: 204",
        "get_token: body: documented: object; your tenant: no body",
    ]
    assert lines("get_token", 403, None) == ["get_token: status: documented: 200; your tenant: 403"]  # no body check
    assert lines("update_token", 200, FIXTURES.example({"ref": "device"})) == [
        "update_token: status: documented: 204; your tenant: 200",
        "update_token: body: documented: no body; your tenant: object",
    ]


def test_a_value_is_never_shown_unless_it_is_a_documented_word():
    """An id, a secret, a user's name in a place the fixtures give a form (pattern) or a type is not repeated."""
    device = {**FIXTURES.example({"ref": "device"}), "secretKey": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}
    assert lines("get_token", 200, device) == ["get_token: body.secretKey: documented: null; your tenant: string"]
    headers = {"Retry-After": "soon", "x-ms-throttle-scope": "amy@contoso.com", "x-ms-throttle-information": "x"}
    found = lines("throttled", 429, FIXTURES.example({"ref": "error"}), headers)
    assert found == [
        "throttled: header Retry-After: documented: a number of seconds; your tenant: text of another form",
        "throttled: header x-ms-throttle-scope: documented: Scope/Limit/ApplicationId/TenantId, Scope and Limit as "
        "the throttling page lists them; your tenant: text of another form",
    ]


def test_an_assumption_is_said_as_one():
    body = {"error": {"code": "badRequest", "message": "The request could not be processed."}}
    assert lines("bulk_refusal", 400, body) == [
        "bulk_refusal: body.error.details: assumed: array; your tenant: missing"
    ]


def test_the_shape_of_an_answer_holds_no_value():
    body = {"value": [{"id": "x", "assignedTo": None}, {"id": "y", "assignedTo": {"id": "u"}}], "@odata.nextLink": "l"}
    assert conformance_shapes.shape_of(body) == {
        "@odata.nextLink": "string",
        "value": [{"assignedTo": "null|object", "id": "string"}],
    }
    assert conformance_shapes.shape_of({"value": []}) == {"value": []}


def test_secrets_are_masked_and_ids_hashed():
    masked = conformance_check.Secrets()
    masked.add("JBSWY3DPEHPK3PXP")
    masked.add("123")  # too short to be told from other text: never a secret of the check
    assert masked.redact("seed JBSWY3DPEHPK3PXP, jbswy3dpehpk3pxp; 123") == "seed ***, ***; 123"
    assert conformance_check.hashed("E55CB360-E3EE-4757-BDD2-04B1E5A00E32") == conformance_check.hashed(
        "e55cb360-e3ee-4757-bdd2-04b1e5a00e32"
    )
