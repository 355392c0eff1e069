"""service_common.gc_tuning: what a serving process does to the collector, and the off switch."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from service_common.gc_tuning import tune_gc
from service_common.settings import ServiceSettings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_tuning_freezes_start_up_objects_and_raises_the_young_threshold(
    restored_gc: None,
) -> None:
    _, older, oldest = gc.get_threshold()
    tune_gc(10_000)
    assert gc.get_threshold() == (10_000, older, oldest)
    assert gc.get_freeze_count() > 0


def test_zero_leaves_the_collector_alone(restored_gc: None) -> None:
    before = (gc.get_threshold(), gc.get_freeze_count())
    tune_gc(0)
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_the_setting_defaults_to_tuned() -> None:
    assert ServiceSettings.model_fields["gc_young_threshold"].default == 10_000
