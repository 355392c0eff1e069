"""Validation of ``audience_forwarding``: the offline validator (crowd.definitions) and the
profile service's PublishDefinitions, which refuses with field violations and writes nothing."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
import pytest

from crowd.definitions.loader import definitions_from_dict
from crowd.definitions.validator import validate
from service_common.errors import decode_error
from tests.forwarding.conftest import Stack
from tests.forwarding.documents import document, forwarding


def _errors(*forwardings: dict[str, Any]) -> dict[str, str]:
    return {e.path: e.message for e in validate(definitions_from_dict(document(*forwardings)))}


def test_a_valid_forwarding_has_no_errors() -> None:
    assert _errors(forwarding("mp", audience_ids=["silver"], labels={"silver": "11034"})) == {}


def test_unknown_and_duplicate_audiences() -> None:
    errors = _errors(forwarding("mp", audience_ids=["silver", "nope", "silver"]))
    assert set(errors) == {
        "audience_forwarding[0].audience_ids[1]",
        "audience_forwarding[0].audience_ids[2]",
    }
    assert "unknown audience" in errors["audience_forwarding[0].audience_ids[1]"]


def test_nothing_forwarded_or_both_selections() -> None:
    assert set(_errors(forwarding("mp"))) == {"audience_forwarding[0]"}
    assert set(_errors(forwarding("mp", all_audiences=True, audience_ids=["gold"]))) == {
        "audience_forwarding[0].audience_ids"
    }


def test_duplicate_ids_missing_connector_identifier_and_bad_mode() -> None:
    bad = forwarding("mp", audience_ids=["gold"], connector_id="")
    del bad["identifier"]
    definitions = definitions_from_dict(
        document(forwarding("mp", mode="in_audience_attributes", audience_ids=["silver"]), bad)
    )
    definitions.audience_forwarding[1].mode = 7  # type: ignore[assignment]
    errors = {e.path: e.message for e in validate(definitions)}
    assert set(errors) == {
        "audience_forwarding[1].id",
        "audience_forwarding[1].connector_id",
        "audience_forwarding[1].identifier",
        "audience_forwarding[1].mode",
    }


def test_two_segment_membership_forwardings_on_one_connector_are_refused() -> None:
    errors = _errors(
        forwarding("a", audience_ids=["silver"]), forwarding("b", audience_ids=["gold"])
    )
    assert set(errors) == {"audience_forwarding[1].mode"}


def test_labels_must_name_forwarded_audiences_and_be_distinct() -> None:
    errors = _errors(
        forwarding(
            "mp",
            audience_ids=["silver", "gold"],
            labels={"platinum": "x", "silver": "gold", "gold": " bad"},
        )
    )
    assert 'audience_forwarding[0].labels["platinum"]' in errors
    assert 'audience_forwarding[0].labels["gold"]' in errors


async def test_publish_refuses_a_bad_forwarding_with_field_violations(stack: Stack) -> None:
    bad = definitions_from_dict(document(forwarding("mp", audience_ids=["nope"])))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.client.publish_definitions(bad)
    code, _, violations = decode_error(refused.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == ["definitions.audience_forwarding[0].audience_ids[0]"]
