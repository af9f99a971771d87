"""Seconds from the environment ($PERFMODE_SCHEDULE_TICK_S, $PERFMODE_SWEEP_PATIENCE_S): the
default when unset, the value when good, one line naming it when not."""

from __future__ import annotations

import pytest

from perfmode.errors import UsageError
from perfmode.schedule.daemon import DEFAULT_TICK_S, TICK_ENV, tick_seconds
from perfmode.sweep.storage import DEFAULT_PATIENCE_S, PATIENCE_ENV, patience_seconds


def test_unset_or_empty_is_the_default_and_a_good_value_is_taken() -> None:
    assert tick_seconds({}) == DEFAULT_TICK_S
    assert tick_seconds({TICK_ENV: ""}) == DEFAULT_TICK_S
    assert tick_seconds({TICK_ENV: "2.5"}) == 2.5
    assert patience_seconds({}) == DEFAULT_PATIENCE_S
    assert patience_seconds({PATIENCE_ENV: "0"}) == 0.0  # record now or never
    assert patience_seconds({PATIENCE_ENV: "86400"}) == 86_400.0


@pytest.mark.parametrize("raw", ["abc", "nan", "inf", "-1", "0", "3601"])
def test_a_bad_tick_is_one_line_naming_it(raw: str) -> None:
    with pytest.raises(UsageError) as e:
        tick_seconds({TICK_ENV: raw})
    assert str(e.value) == (f"{TICK_ENV}={raw!r}: give seconds between reconciles, 0 < s <= 3600")


@pytest.mark.parametrize("raw", ["abc", "nan", "inf", "-0.5", "86401"])
def test_a_bad_patience_is_one_line_naming_it(raw: str) -> None:
    with pytest.raises(UsageError) as e:
        patience_seconds({PATIENCE_ENV: raw})
    assert str(e.value) == f"{PATIENCE_ENV}={raw!r}: give seconds from 0 to 86400"
