"""Validation of ``cohort_bindings`` by the offline validator (the service runs the same)."""

from __future__ import annotations

from typing import Any

from crowd.definitions.loader import definitions_from_dict
from crowd.definitions.validator import validate
from tests.forwarding.documents import document


def _errors(*bindings: dict[str, Any]) -> dict[str, str]:
    doc = document()
    doc["cohort_bindings"] = list(bindings)
    return {e.path: e.message for e in validate(definitions_from_dict(doc))}


def _binding(**fields: Any) -> dict[str, Any]:
    return {
        "audience_id": "silver",
        "connector_id": "braze",
        "cohort_id": "c-1",
        "external_id": {"attribute": "customer_id"},
        **fields,
    }


def test_valid_bindings_have_no_errors() -> None:
    assert _errors(_binding(), _binding(audience_id="gold", cohort_id="c-2")) == {}
    alias = _binding(
        identifier="alias",
        alias_name={"attribute": "customer_id"},
        alias_label={"constant": "crm"},
    )
    assert _errors(alias) == {}


def test_unknown_audience_blank_cohort_and_missing_connector() -> None:
    errors = _errors(_binding(audience_id="nope", cohort_id=" ", connector_id=""))
    assert set(errors) == {
        "cohort_bindings[0].audience_id",
        "cohort_bindings[0].cohort_id",
        "cohort_bindings[0].connector_id",
    }


def test_a_cohort_is_bound_once_per_connector() -> None:
    errors = _errors(_binding(), _binding(audience_id="gold"))
    assert set(errors) == {"cohort_bindings[1].cohort_id"}


def test_the_identifier_needs_its_operands() -> None:
    assert set(_errors(_binding(identifier="device_id"))) == {"cohort_bindings[0].device_id"}
    errors = _errors(_binding(identifier="alias", alias_name={"attribute": "customer_id"}))
    assert set(errors) == {"cohort_bindings[0].alias_label"}


def test_event_operands_and_long_names_are_refused() -> None:
    errors = _errors(_binding(external_id={"event": "customer_id"}, cohort_name="n" * 256))
    assert set(errors) == {
        "cohort_bindings[0].external_id.event",
        "cohort_bindings[0].cohort_name",
    }
