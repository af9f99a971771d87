"""The pure timetable: boundaries across midnight, weekends, DST, and cron rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from perfmode.base.modes import Mode
from perfmode.errors import UsageError
from perfmode.schedule.cron import parse_rule
from perfmode.schedule.timetable import (
    Timetable,
    boundaries_between,
    last_boundary,
    next_switches,
    parse_hhmm,
    scheduled_mode,
    wall_to_utc,
)

P, Q = Mode.PERFORMANCE, Mode.QUIET


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


def tt(night: str = "18:00", day: str = "08:00", tz: str = "Europe/Berlin", **kw) -> Timetable:
    return Timetable.create(tz=tz, night=night, day=day, **kw)


# --- input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("18:00", time(18)), ("7:30", time(7, 30)), ("00:00", time(0)), ("23:59", time(23, 59))],
)
def test_parse_hhmm_accepts_24_hour_times(text: str, expected: time) -> None:
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize(
    "text", ["25:00", "24:00", "7pm", "18:60", "18", "18:0", "", "-1:00", "18:00:00", "١٨:٠٠"]
)
def test_parse_hhmm_rejects_anything_else_in_one_line(text: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_hhmm(text, "--night")
    assert e.value.exit_code == 2
    assert "--night" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"night": "18:00", "day": "18:00"}, "must differ"),
        ({"night": "18:00", "day": None}, "needs --day"),
        ({"night": "18:00", "day": "08:00", "tz": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"night": "18:00", "day": "08:00", "weekends": "sometimes"}, "--weekends"),
        ({"night": None, "day": None}, "empty schedule"),
        ({"night": None, "day": None, "rules": ["0 18 * * *=quiet"], "weekends": "quiet"}, "rule"),
    ],
)
def test_create_rejects_bad_input(kw: dict, needle: str) -> None:
    kw = {"tz": "Europe/Berlin", **kw}
    with pytest.raises(UsageError, match=needle):
        Timetable.create(**kw)


def test_dict_round_trip_and_hand_edited_problems() -> None:
    t = tt(weekends="quiet", rules=["0 12 * * mon-fri=quiet"])
    d = t.to_dict()
    assert d == {
        "night": "18:00",
        "day": "08:00",
        "weekends": "quiet",
        "tz": "Europe/Berlin",
        "rules": ["0 12 * * mon-fri=quiet"],
    }
    assert Timetable.from_dict(d) == t
    # A hand-written minimal value works; weekends default to the weekday timetable.
    assert (
        Timetable.from_dict({"night": "22:00", "day": "6:00", "tz": "UTC"}).weekends == "schedule"
    )
    for bad, needle in [
        ("18:00", "not an object"),
        ({"night": "18:00", "day": "08:00"}, "no 'tz'"),
        ({"night": "25:00", "day": "08:00", "tz": "UTC"}, "schedule.night"),
        ({"rules": "0 1 * * *=quiet", "tz": "UTC"}, "list"),
    ]:
        with pytest.raises(UsageError, match=needle):
            Timetable.from_dict(bad)


# --- every day -----------------------------------------------------------------------------


def test_night_across_midnight() -> None:
    t = tt("22:00", "06:00")
    assert scheduled_mode(t, local("Europe/Berlin", 2024, 6, 5, 23)) is P
    b = last_boundary(t, local("Europe/Berlin", 2024, 6, 6, 3))
    assert b is not None and b.mode is P and b.at == local("Europe/Berlin", 2024, 6, 5, 22)
    assert scheduled_mode(t, local("Europe/Berlin", 2024, 6, 6, 7)) is Q
    # A boundary is in force from its own instant on.
    assert scheduled_mode(t, local("Europe/Berlin", 2024, 6, 6, 6)) is Q
    assert scheduled_mode(t, local("Europe/Berlin", 2024, 6, 6, 5, 59, 59)) is P


def test_night_before_day_in_the_same_morning() -> None:
    t = tt("01:00", "07:00")
    assert scheduled_mode(t, local("Europe/Berlin", 2024, 6, 5, 23, 30)) is Q
    assert scheduled_mode(t, local("Europe/Berlin", 2024, 6, 6, 2)) is P


def test_next_switches_are_ordered_and_counted() -> None:
    now = local("America/New_York", 2024, 6, 5, 12)
    got = next_switches(tt(tz="America/New_York"), now, 3)
    assert [(b.local.replace(tzinfo=None), b.mode) for b in got] == [
        (datetime(2024, 6, 5, 18), P),
        (datetime(2024, 6, 6, 8), Q),
        (datetime(2024, 6, 6, 18), P),
    ]


# --- weekends ------------------------------------------------------------------------------

# 2024-06-07 is a Friday.
FRI, SAT, SUN, MON = 7, 8, 9, 10


def test_weekends_quiet_holds_quiet_from_saturday_to_monday_midnight() -> None:
    t = tt(weekends="quiet")
    at = lambda d, h: local("Europe/Berlin", 2024, 6, d, h)  # noqa: E731
    assert scheduled_mode(t, at(FRI, 19)) is P  # Friday is a weekday
    b = last_boundary(t, at(SAT, 10))
    assert b is not None and (b.mode, b.source, b.at) == (Q, "weekend", at(SAT, 0))
    b = last_boundary(t, at(SUN, 20))  # Sunday's 18:00 does not fire
    assert b is not None and b.at == at(SAT, 0)
    b = last_boundary(t, at(MON, 3))  # Monday midnight resumes the night
    assert b is not None and (b.mode, b.source, b.at) == (P, "weekday", at(MON, 0))
    assert scheduled_mode(t, at(MON, 9)) is Q


def test_weekends_performance_runs_from_friday_night_to_monday_day() -> None:
    t = tt(weekends="performance")
    at = lambda d, h: local("Europe/Berlin", 2024, 6, d, h)  # noqa: E731
    # No midnight boundary when the mode would not change.
    got = boundaries_between(t, at(FRI, 12), at(MON, 12))
    assert [(b.at, b.mode) for b in got] == [(at(FRI, 18), P), (at(MON, 8), Q)]


def test_weekends_schedule_runs_the_weekday_timetable() -> None:
    t = tt(weekends="schedule")
    got = boundaries_between(
        t, local("Europe/Berlin", 2024, 6, FRI, 12), local("Europe/Berlin", 2024, 6, MON, 12)
    )
    assert len(got) == 6 and all(b.source in ("night", "day") for b in got)


def test_weekend_with_the_night_before_the_day() -> None:
    # State at midnight is quiet (07:00 is the later time); weekends performance.
    t = tt("01:00", "07:00", weekends="performance")
    at = lambda d, h: local("Europe/Berlin", 2024, 6, d, h)  # noqa: E731
    got = boundaries_between(t, at(FRI, 12), at(MON, 12))
    assert [(b.at, b.mode, b.source) for b in got] == [
        (at(SAT, 0), P, "weekend"),
        (at(MON, 0), Q, "weekday"),
        (at(MON, 1), P, "night"),
        (at(MON, 7), Q, "day"),
    ]


# --- DST -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "night", "expected_utc"),
    [
        # Berlin springs 02:00 CET -> 03:00 CEST: 02:30 happens at 03:00 CEST.
        ("Europe/Berlin", date(2024, 3, 31), "02:30", utc(2024, 3, 31, 1)),
        # New York springs 02:00 EST -> 03:00 EDT.
        ("America/New_York", date(2024, 3, 10), "02:30", utc(2024, 3, 10, 7)),
        # Lord Howe springs half an hour: 02:00 -> 02:30.
        ("Australia/Lord_Howe", date(2024, 10, 6), "02:10", utc(2024, 10, 5, 15, 30)),
    ],
)
def test_spring_forward_moves_a_missing_time_to_the_first_valid_minute(
    tz: str, day: date, night: str, expected_utc: datetime
) -> None:
    t = tt(night, "12:00", tz=tz)
    start = datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)
    got = [b for b in boundaries_between(t, start, start + timedelta(hours=23)) if b.mode is P]
    assert [b.at for b in got] == [expected_utc]
    assert got[0].local.minute == 0 or got[0].local.minute == 30


@pytest.mark.parametrize(
    ("tz", "day", "night", "first_utc"),
    [
        # Berlin falls back 03:00 CEST -> 02:00 CET: 02:30 happens twice.
        ("Europe/Berlin", date(2024, 10, 27), "02:30", utc(2024, 10, 27, 0, 30)),
        # New York falls back 02:00 EDT -> 01:00 EST: 01:30 happens twice.
        ("America/New_York", date(2024, 11, 3), "01:30", utc(2024, 11, 3, 5, 30)),
    ],
)
def test_fall_back_fires_the_first_occurrence_only(
    tz: str, day: date, night: str, first_utc: datetime
) -> None:
    t = tt(night, "12:00", tz=tz)
    start = datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)
    got = [b for b in boundaries_between(t, start, start + timedelta(hours=25)) if b.mode is P]
    assert [b.at for b in got] == [first_utc]
    # During the repeated hour the boundary in force is still the first occurrence,
    # and nothing new happens at the second one.
    second = first_utc + timedelta(hours=1)
    b = last_boundary(t, second + timedelta(minutes=1))
    assert b is not None and b.at == first_utc
    assert boundaries_between(t, second - timedelta(minutes=1), second + timedelta(minutes=1)) == []


@pytest.mark.parametrize(
    ("tz", "spring", "fall"),
    [
        ("Europe/Berlin", date(2024, 3, 31), date(2024, 10, 27)),
        ("America/New_York", date(2024, 3, 10), date(2024, 11, 3)),
    ],
)
def test_a_usual_timetable_keeps_wall_times_across_both_transitions(
    tz: str, spring: date, fall: date
) -> None:
    t = tt("18:00", "08:00", tz=tz)
    for day, hours in ((spring, 23), (fall, 25)):
        start = datetime.combine(day - timedelta(days=1), time(12), ZoneInfo(tz)).astimezone(UTC)
        got = boundaries_between(t, start, start + timedelta(days=2))
        assert [(b.local.replace(tzinfo=None), b.mode) for b in got] == [
            (datetime.combine(day - timedelta(days=1), time(18)), P),
            (datetime.combine(day, time(8)), Q),
            (datetime.combine(day, time(18)), P),
            (datetime.combine(day + timedelta(days=1), time(8)), Q),
        ]
        # In UTC the night that spans the change is an hour shorter or longer.
        assert got[2].at - got[0].at == timedelta(hours=hours)


def test_a_missing_midnight_moves_to_the_first_valid_minute() -> None:
    # Santiago springs 00:00 -> 01:00 on 2024-09-08.
    z = ZoneInfo("America/Santiago")
    at = wall_to_utc(date(2024, 9, 8), time(0), z)
    assert at.astimezone(z).replace(tzinfo=None) == datetime(2024, 9, 8, 1)


# --- rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dow", "weekdays"),
    [
        ("1-5", {0, 1, 2, 3, 4}),  # standard cron: 1 = Monday, unlike APScheduler's from_crontab
        ("0", {6}),
        ("7", {6}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("fri-sun", {4, 5, 6}),
        ("sat,sun", {5, 6}),
        ("*/2", {6, 1, 3, 5}),  # 0, 2, 4, 6 = sun, tue, thu, sat
    ],
)
def test_rule_weekdays_follow_standard_cron(dow: str, weekdays: set[int]) -> None:
    assert parse_rule(f"0 18 * * {dow}=performance").cron.weekdays == weekdays


def test_rule_fields_steps_names_and_seconds() -> None:
    r = parse_rule("5/15 9-17 1,15 jan-mar *=quiet")
    assert r.mode is Q
    assert r.cron.minutes == {5, 20, 35, 50}
    assert r.cron.hours == set(range(9, 18))
    assert r.cron.days == {1, 15} and r.cron.months == {1, 2, 3}
    six = parse_rule("30 0 18 * * *=performance")  # leading seconds field
    assert six.cron.times == (time(18, 0, 30),)


@pytest.mark.parametrize(
    "text",
    [
        "0 18 * * mon-fri",  # no mode
        "0 18 * * mon-fri=turbo",
        "0 18 * *=quiet",
        "60 18 * * *=quiet",
        "0 18 * * 8=quiet",
        "0 18 * * funday=quiet",
        "0 18 5-1 * *=quiet",
        "*/0 18 * * *=quiet",
        "0 0 31 2 *=quiet",  # never happens
        "*/2 * * * * *=quiet",  # more than once a minute
    ],
)
def test_bad_rules_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="bad rule"):
        parse_rule(text)


def test_rules_combine_with_night_and_day_and_the_last_listed_wins_a_tie() -> None:
    t = tt(rules=["0 12 * * mon-fri=performance", "0 18 * * fri=quiet"])
    at = lambda d, h: local("Europe/Berlin", 2024, 6, d, h)  # noqa: E731
    got = boundaries_between(t, at(FRI, 0), at(FRI, 23))
    assert [(b.at, b.mode, b.source) for b in got] == [
        (at(FRI, 8), Q, "day"),
        (at(FRI, 12), P, "rule 1"),
        (at(FRI, 18), Q, "rule 2"),
    ]
    assert scheduled_mode(t, at(FRI, 19)) is Q
    assert scheduled_mode(t, at(7 - 1, 19)) is P  # Thursday: no rule 2


def _cron_fields(rule: str) -> dict[str, str]:
    """APScheduler ``CronTrigger`` fields for ``rule``, weekdays by name (its numbers differ)."""
    spec = parse_rule(rule).cron
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

    def listed(values: frozenset[int]) -> str:
        return ",".join(str(v) for v in sorted(values))

    return {
        "second": listed(spec.seconds),
        "minute": listed(spec.minutes),
        "hour": listed(spec.hours),
        "day": listed(spec.days),
        "month": listed(spec.months),
        "day_of_week": ",".join(names[w] for w in sorted(spec.weekdays)),
    }


def test_rules_agree_with_another_cron_implementation() -> None:
    """APScheduler's cron, as an oracle for the sets each field allows (outside DST changes,
    where the two differ on purpose)."""
    from apscheduler.triggers.cron import CronTrigger

    rules = [
        "0 18 * * 1-5=performance",
        "30 7 1-7 * mon=quiet",
        "*/20 9-10 * jan,jun sun=quiet",
        "15 4 29 2 *=performance",
    ]
    zone = ZoneInfo("Europe/Berlin")
    start = datetime(2024, 5, 1, tzinfo=zone)  # no DST change until October
    for text in rules:
        t = Timetable.create(tz="Europe/Berlin", rules=[text])
        trigger = CronTrigger(timezone=zone, **_cron_fields(text))
        ours = [b.at for b in boundaries_between(t, start.astimezone(UTC), utc(2024, 10, 1))]
        theirs, prev, now = [], None, start
        while True:
            nxt = trigger.get_next_fire_time(prev, now)
            if nxt is None or nxt >= datetime(2024, 10, 1, tzinfo=UTC):
                break
            theirs.append(nxt.astimezone(UTC))
            prev = now = nxt + timedelta(microseconds=1)
        assert ours == theirs, text
