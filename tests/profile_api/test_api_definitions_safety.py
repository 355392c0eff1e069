"""Definitions safety through the real API: RE2 regex rules (a catastrophic pattern cannot pin
the event loop; patterns RE2 refuses are errors with their path), validation off the event
loop, and document size limits refused with INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest

from crowd.client import CrowdClient
from crowd.definitions.limits import MAX_ATTRIBUTES, MAX_DOCUMENT_BYTES
from crowd.definitions.loader import definitions_from_dict
from crowd.profile.v1 import definitions_pb2 as pb
from service_common.errors import decode_error

PATTERN_PATH = (
    "attributes[0].enrichments[0].rule.groups[0].conditions[0].value.constant.string_value"
)


def badge_when_matching(pattern: str) -> pb.Definitions:
    """Badge ``matched`` when the event's ``q`` matches ``pattern``."""
    return definitions_from_dict(
        {
            "attributes": [
                {
                    "id": "matched",
                    "scope": "visitor",
                    "type": "badge",
                    "enrichments": [
                        {
                            "id": "assign",
                            "kind": "assign_badge",
                            "when": "any_event",
                            "rule": {
                                "groups": [
                                    {
                                        "conditions": [
                                            {
                                                "input": {"event": "q"},
                                                "operator": "matches_regex",
                                                "value": {"constant": pattern},
                                            }
                                        ]
                                    }
                                ]
                            },
                        }
                    ],
                }
            ]
        }
    )


def slow_to_validate() -> pb.Definitions:
    """A document within every limit that takes long to validate (500 attributes with 20
    rule-guarded enrichments each)."""
    enrichment: dict[str, Any] = {
        "kind": "increment",
        "when": "any_event",
        "operands": [{"constant": 1}],
        "rule": {
            "groups": [
                {
                    "conditions": [
                        {
                            "input": {"event": f"f{k}"},
                            "operator": "equals",
                            "value": {"constant": 1},
                        }
                        for k in range(5)
                    ]
                }
            ]
        },
    }
    template = definitions_from_dict(
        {
            "attributes": [
                {
                    "id": "a",
                    "scope": "visitor",
                    "type": "number",
                    "enrichments": [{**enrichment, "id": f"e{j}"} for j in range(20)],
                }
            ]
        }
    ).attributes[0]
    document = pb.Definitions()
    for i in range(MAX_ATTRIBUTES):
        attribute = document.attributes.add()
        attribute.CopyFrom(template)
        attribute.id = f"a{i}"
    assert document.ByteSize() < MAX_DOCUMENT_BYTES
    return document


async def test_a_catastrophic_pattern_cannot_pin_the_event_loop(client: CrowdClient) -> None:
    answer = await client.validate_definitions(badge_when_matching("(a+)+$"))
    assert answer.valid
    await client.publish_definitions(badge_when_matching("(a+)+$"))

    # Python's re backtracks forever on this (event strings are capped at 1,500 characters;
    # the engine test matches 100,000); the event must simply be processed.
    missed = await client.track_event("v1", "search", {"q": "a" * 1_400 + "!"})
    assert "matched" not in missed.badges_assigned
    hit = await client.track_event("v1", "search", {"q": "x" + "a" * 40})
    assert "matched" in hit.badges_assigned


@pytest.mark.parametrize(
    ("pattern", "words"),
    [(r"(a)\1", "back-references"), ("a(?=b)", "look-ahead"), ("(?<=a)b", "look-behind")],
)
async def test_patterns_re2_cannot_compile_are_refused_with_their_path(
    client: CrowdClient, pattern: str, words: str
) -> None:
    answer = await client.validate_definitions(badge_when_matching(pattern))
    assert not answer.valid
    assert [error.path for error in answer.errors] == [PATTERN_PATH]
    assert words in answer.errors[0].message

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.publish_definitions(badge_when_matching(pattern))
    code, _, violations = decode_error(refused.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == [f"definitions.{PATTERN_PATH}"]
    assert words in violations[0].description


async def test_an_event_completes_while_a_large_document_validates(client: CrowdClient) -> None:
    validation = asyncio.create_task(client.validate_definitions(slow_to_validate()))
    # Events keep flowing while the document validates: at least one event's response
    # arrives before the validation's (on the event loop, validation would hold them all).
    answered_first = 0
    while not validation.done():
        await client.track_event("v-during", "view")
        if not validation.done():
            answered_first += 1
    assert (await validation).valid
    assert answered_first >= 1


async def test_over_limit_documents_are_refused_with_a_readable_violation(
    client: CrowdClient,
) -> None:
    too_many = pb.Definitions()
    for i in range(10_000):
        too_many.attributes.add(
            id=f"a{i}", scope=pb.ATTRIBUTE_SCOPE_VISITOR, type=pb.ATTRIBUTE_TYPE_NUMBER
        )
    for call in (client.validate_definitions, client.publish_definitions):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(too_many)
        code, info, violations = decode_error(refused.value)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert info is not None and info.reason == "DEFINITIONS_TOO_LARGE"
        assert [(v.field, v.description) for v in violations] == [
            ("definitions.attributes", "the document has 10000 attributes; at most 500 allowed")
        ]

    huge = pb.Definitions()
    huge.attributes.add(
        id="a",
        scope=pb.ATTRIBUTE_SCOPE_VISITOR,
        type=pb.ATTRIBUTE_TYPE_STRING,
        description="x" * 3_000_000,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.validate_definitions(huge)
    code, _, violations = decode_error(refused.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations] == ["definitions"]
    assert "bytes (serialized); at most 2,097,152 allowed" in violations[0].description
