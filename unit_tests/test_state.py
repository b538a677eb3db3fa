"""Cursor parsing/formatting, per-repository cursors (RepositoryCursors) and CommitFrontier."""

import copy
import itertools
from datetime import datetime, timedelta, timezone

import pytest

from source_bitbucket.dates import format_datetime, parse_datetime
from source_bitbucket.state import CLOCK_SKEW_MARGIN_SECONDS, RepositoryCursors, get_updated_state, usable_cursors
from source_bitbucket.streams.commits import CommitFrontier

UTC = timezone.utc
START_DATE = datetime(2021, 1, 1, tzinfo=UTC)
SYNC_STARTED_AT = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
CEILING = SYNC_STARTED_AT - timedelta(seconds=CLOCK_SKEW_MARGIN_SECONDS)

ALPHA = {"uuid": "{aaaaaaaa-0000-0000-0000-000000000001}", "full_name": "acme/alpha", "slug": "alpha"}
BETA = {"uuid": "{bbbbbbbb-0000-0000-0000-000000000002}", "full_name": "acme/beta", "slug": "beta"}


def cursors(start_date=START_DATE):
    return RepositoryCursors("updated_on", start_date, SYNC_STARTED_AT)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# --- parse_datetime / format_datetime -------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2022-03-21T05:51:36.103720+00:00", utc(2022, 3, 21, 5, 51, 36, 103720)),
        ("2019-05-13T13:24:53+00:00", utc(2019, 5, 13, 13, 24, 53)),
        ("2021-12-05T08:25:38.86750Z", utc(2021, 12, 5, 8, 25, 38, 867500)),
        ("2021-12-05T08:25:38Z", utc(2021, 12, 5, 8, 25, 38)),
        ("2021-06-01T10:00:00.123456", utc(2021, 6, 1, 10, 0, 0, 123456)),
        ("2021-06-01T10:00:00.123456+02:00", utc(2021, 6, 1, 8, 0, 0, 123456)),
        ("2021-06-01T01:30:00-05:00", utc(2021, 6, 1, 6, 30)),
        ("2021-01-01T00:30:00+02:00", utc(2020, 12, 31, 22, 30)),
        ("2023-01-01T00:00:00.999999+00:00", utc(2023, 1, 1, 0, 0, 0, 999999)),
        (datetime(2021, 6, 1, 10, 0), utc(2021, 6, 1, 10, 0)),
        (datetime(2021, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), utc(2021, 6, 1, 10, 0)),
    ],
)
def test_parse_datetime(value, expected):
    parsed = parse_datetime(value)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    # Same wall-clock fields as the expected UTC value (not only the same instant).
    assert parsed.replace(tzinfo=None) == expected.replace(tzinfo=None)


@pytest.mark.parametrize("value", [None, "", "garbage", "not-a-date-2021", "2021-13-45T00:00:00Z", "P1D", 0])
def test_parse_datetime_returns_none_for_missing_or_unparsable(value):
    assert parse_datetime(value) is None


@pytest.mark.parametrize("value", [
    "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
    "9999-12-31T23:59:59.999999-00:01",
    "0001-001T00:00:00+01:00",  # parsed by pendulum, not by the standard library
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1))),
])
def test_parse_datetime_returns_none_when_utc_is_out_of_range(value):
    assert parse_datetime(value) is None


@pytest.mark.parametrize("value,expected", [
    ("0001-01-01T00:00:00-01:00", utc(1, 1, 1, 1)),
    ("9999-12-31T23:59:59+01:00", utc(9999, 12, 31, 22, 59, 59)),
    ("0001-001T00:00:00.5-01:00", utc(1, 1, 1, 1, 0, 0, 500000)),
])
def test_parse_datetime_at_the_edges_of_utc(value, expected):
    parsed = parse_datetime(value)
    assert parsed == expected and type(parsed) is datetime
    assert format_datetime(parsed) == expected.isoformat(timespec="microseconds")


def test_a_state_cursor_out_of_range_in_utc_counts_as_no_cursor():
    state = {ALPHA["uuid"]: {"updated_on": "0001-01-01T00:00:00+01:00"}, "updated_on": "9999-12-31T23:59:59-01:00"}
    assert cursors().stored_cursor(state, ALPHA) is None
    assert cursors().lower_bound(state, ALPHA) == START_DATE
    assert cursors().lower_bound(state, None) == START_DATE


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2019-05-13T13:24:53+00:00", "2019-05-13T13:24:53.000000+00:00"),
        ("2021-12-05T08:25:38.86750Z", "2021-12-05T08:25:38.867500+00:00"),
        ("2022-03-21T05:51:36.103720+00:00", "2022-03-21T05:51:36.103720+00:00"),
        ("2021-06-01T10:00:00.5+02:00", "2021-06-01T08:00:00.500000+00:00"),
        ("2021-06-01T10:00:00", "2021-06-01T10:00:00.000000+00:00"),
    ],
)
def test_format_datetime_canonical_form(value, expected):
    assert format_datetime(parse_datetime(value)) == expected


def test_format_datetime_converts_aware_values_to_utc():
    value = datetime(2024, 5, 1, 12, 0, 0, 42, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(value) == "2024-05-01T10:00:00.000042+00:00"


def test_ordering_is_by_instant_not_by_string():
    z = "2024-01-01T10:00:00Z"
    half = "2024-01-01T10:00:00.5+00:00"
    plus_two = "2024-01-01T11:00:00+02:00"  # 09:00 UTC
    # As strings, the order is the opposite of the instants' order:
    assert z > half and plus_two > z
    assert parse_datetime(plus_two) < parse_datetime(z) < parse_datetime(half)


def test_observe_compares_instants_not_strings():
    state = {ALPHA["uuid"]: {"updated_on": "2024-01-01T10:00:00.500000+00:00"}}
    c = cursors()
    c.observe(state, {}, ALPHA, "2024-01-01T10:00:00Z")  # string-greater, instant-earlier
    c.observe(state, {}, ALPHA, "2024-01-01T11:00:00+02:00")  # string-greater, instant-earlier
    assert state[ALPHA["uuid"]]["updated_on"] == "2024-01-01T10:00:00.500000+00:00"
    c.observe(state, {}, ALPHA, "2024-01-01T12:00:00.1+02:00")  # 10:00:00.1 UTC: still earlier
    assert state[ALPHA["uuid"]]["updated_on"] == "2024-01-01T10:00:00.500000+00:00"
    c.observe(state, {}, ALPHA, "2024-01-01T12:00:01+02:00")  # 10:00:01 UTC: later
    assert state[ALPHA["uuid"]]["updated_on"] == "2024-01-01T10:00:01.000000+00:00"


# --- RepositoryCursors.lower_bound / stored_cursor ------------------------------------------


def test_lower_bound_new_repository_is_start_date():
    state = {BETA["uuid"]: {"updated_on": "2023-01-01T00:00:00.000000+00:00"}}
    assert cursors().lower_bound(state, ALPHA) == START_DATE
    assert cursors().lower_bound({}, ALPHA) == START_DATE


def test_lower_bound_uses_stored_cursor_when_later_than_start_date():
    state = {ALPHA["uuid"]: {"updated_on": "2023-05-01T10:00:00.000000+00:00"}}
    assert cursors().lower_bound(state, ALPHA) == utc(2023, 5, 1, 10)


def test_lower_bound_uses_a_later_start_date_over_the_stored_cursor():
    state = {ALPHA["uuid"]: {"updated_on": "2023-05-01T10:00:00.000000+00:00"}}
    raised = utc(2024, 1, 1)
    assert cursors(start_date=raised).lower_bound(state, ALPHA) == raised


def test_lower_bound_ignores_an_entry_without_the_cursor_field():
    state = {ALPHA["uuid"]: {"something_else": "2023-05-01T10:00:00+00:00"}}
    assert cursors().lower_bound(state, ALPHA) == START_DATE


UUID_VALUE = "2023-04-04T00:00:00.000000+00:00"
FULL_NAME_VALUE = "2023-03-03T00:00:00+00:00"
SLUG_VALUE = "2023-02-02T00:00:00Z"
STREAM_VALUE = "2023-01-01T00:00:00.000000+00:00"
ALL_KEYS = {
    ALPHA["uuid"]: {"updated_on": UUID_VALUE},
    "acme/alpha": {"updated_on": FULL_NAME_VALUE},
    "alpha": {"updated_on": SLUG_VALUE},
    "updated_on": STREAM_VALUE,
}


@pytest.mark.parametrize(
    "removed,expected",
    [
        ((), utc(2023, 4, 4)),
        ((ALPHA["uuid"],), utc(2023, 3, 3)),
        ((ALPHA["uuid"], "acme/alpha"), utc(2023, 2, 2)),
        ((ALPHA["uuid"], "acme/alpha", "alpha"), utc(2023, 1, 1)),
        ((ALPHA["uuid"], "acme/alpha", "alpha", "updated_on"), None),
    ],
    ids=["uuid", "full_name", "slug", "stream-wide", "none"],
)
def test_stored_cursor_lookup_order(removed, expected):
    state = {k: v for k, v in ALL_KEYS.items() if k not in removed}
    # The neighbour's entries must never be read for ALPHA.
    state[BETA["uuid"]] = {"updated_on": "2023-12-31T00:00:00+00:00"}
    state["acme/beta"] = {"updated_on": "2023-12-30T00:00:00+00:00"}
    assert cursors().stored_cursor(state, ALPHA) == expected
    assert cursors().lower_bound(state, ALPHA) == (expected or START_DATE)


def test_stored_cursor_for_no_repository_is_the_stream_wide_cursor():
    state = {ALPHA["uuid"]: {"updated_on": UUID_VALUE}, "updated_on": "2023-07-07T00:00:00Z"}
    assert cursors().stored_cursor(state, None) == utc(2023, 7, 7)
    assert cursors().lower_bound(state, None) == utc(2023, 7, 7)
    assert cursors().lower_bound({ALPHA["uuid"]: {"updated_on": UUID_VALUE}}, None) == START_DATE


# --- RepositoryCursors.observe ---------------------------------------------------------------


def test_observe_advances_only_forward_and_writes_canonical_form():
    state = {}
    c = cursors()
    returned = c.observe(state, {}, ALPHA, "2023-05-01T10:00:00Z")
    assert returned is state
    assert state == {ALPHA["uuid"]: {"updated_on": "2023-05-01T10:00:00.000000+00:00"}}
    c.observe(state, {}, ALPHA, "2023-04-01T10:00:00+00:00")
    assert state[ALPHA["uuid"]]["updated_on"] == "2023-05-01T10:00:00.000000+00:00"
    c.observe(state, {}, ALPHA, "2023-05-02T09:00:00.25+02:00")
    assert state[ALPHA["uuid"]]["updated_on"] == "2023-05-02T07:00:00.250000+00:00"


@pytest.mark.parametrize("value", [None, "", "garbage"])
def test_observe_ignores_missing_or_unparsable_values(value):
    state = {ALPHA["uuid"]: {"updated_on": "2023-05-01T10:00:00.000000+00:00"}}
    before = copy.deepcopy(state)
    cursors().observe(state, {}, ALPHA, value)
    assert state == before


def test_observe_does_not_move_cursor_back_from_a_legacy_key():
    state = {"acme/alpha": {"updated_on": "2023-06-01T00:00:00Z"}}
    cursors().observe(state, state, ALPHA, "2023-01-01T00:00:00Z")
    assert state == {ALPHA["uuid"]: {"updated_on": "2023-06-01T00:00:00.000000+00:00"}}


def test_observe_does_not_move_cursor_back_from_the_stream_wide_cursor():
    state = {"updated_on": "2023-06-01T00:00:00Z"}
    cursors().observe(state, {}, ALPHA, "2023-01-01T00:00:00Z")
    assert state[ALPHA["uuid"]] == {"updated_on": "2023-06-01T00:00:00.000000+00:00"}
    # The stream-wide cursor stays: other repositories not synced yet still fall back to it.
    assert state["updated_on"] == "2023-06-01T00:00:00Z"


def test_observe_moves_legacy_keys_to_uuid_and_leaves_other_repositories_alone():
    beta_entry = {"updated_on": "2022-02-02T00:00:00Z", "extra": 1}
    state = {
        "acme/alpha": {"updated_on": "2022-01-01T00:00:00Z"},
        "alpha": {"updated_on": "2021-06-01T00:00:00Z"},
        "acme/beta": beta_entry,
        "beta": {"updated_on": "2022-03-03T00:00:00Z"},
        "updated_on": "2021-02-02T00:00:00Z",
    }
    cursors().observe(state, copy.deepcopy(state), ALPHA, "2023-01-01T00:00:00Z")
    assert state == {
        ALPHA["uuid"]: {"updated_on": "2023-01-01T00:00:00.000000+00:00"},
        "acme/beta": {"updated_on": "2022-02-02T00:00:00Z", "extra": 1},
        "beta": {"updated_on": "2022-03-03T00:00:00Z"},
        "updated_on": "2021-02-02T00:00:00Z",
    }
    assert state["acme/beta"] is beta_entry


def test_observe_replaces_the_entry_instead_of_mutating_it():
    entry = {"updated_on": "2023-01-01T00:00:00.000000+00:00", "note": "kept"}
    state = {ALPHA["uuid"]: entry}
    emitted = state[ALPHA["uuid"]]
    cursors().observe(state, {}, ALPHA, "2023-02-01T00:00:00Z")
    assert emitted == {"updated_on": "2023-01-01T00:00:00.000000+00:00", "note": "kept"}
    assert state[ALPHA["uuid"]] is not emitted
    assert state[ALPHA["uuid"]] == {"updated_on": "2023-02-01T00:00:00.000000+00:00", "note": "kept"}


def test_observe_without_repository_updates_the_stream_wide_cursor():
    state = {"updated_on": "2023-01-01T00:00:00Z"}
    c = cursors()
    c.observe(state, {}, None, "2023-03-01T00:00:00+01:00")
    assert state == {"updated_on": "2023-02-28T23:00:00.000000+00:00"}
    c.observe(state, {}, None, "2023-01-15T00:00:00Z")
    assert state == {"updated_on": "2023-02-28T23:00:00.000000+00:00"}


# --- the safety rule --------------------------------------------------------------------------


def test_value_just_below_the_ceiling_advances():
    state = {}
    below = CEILING - timedelta(microseconds=1)
    cursors().observe(state, {}, ALPHA, below.isoformat())
    assert state[ALPHA["uuid"]]["updated_on"] == format_datetime(below)


@pytest.mark.parametrize(
    "value",
    [
        CEILING.isoformat(),  # exactly at the ceiling
        (SYNC_STARTED_AT - timedelta(seconds=1)).isoformat(),  # updated during the sync
        "2024-06-01T14:00:30+02:00",  # 12:00:30 UTC, written with an offset
        "2030-01-01T00:00:00Z",  # future-dated
    ],
)
def test_value_at_or_after_the_ceiling_pins_the_cursor_to_its_initial_value(value):
    initial = {ALPHA["uuid"]: {"updated_on": "2023-01-01T00:00:00.000000+00:00"}}
    state = copy.deepcopy(initial)
    c = cursors()
    c.observe(state, initial, ALPHA, "2023-06-01T00:00:00Z")
    assert state[ALPHA["uuid"]]["updated_on"] == "2023-06-01T00:00:00.000000+00:00"
    c.observe(state, initial, ALPHA, value)
    assert state[ALPHA["uuid"]]["updated_on"] == "2023-01-01T00:00:00.000000+00:00"
    # Later records of the pinned repository do not move it.
    c.observe(state, initial, ALPHA, "2023-09-01T00:00:00Z")
    c.observe(state, initial, ALPHA, "2031-01-01T00:00:00Z")
    assert state[ALPHA["uuid"]]["updated_on"] == "2023-01-01T00:00:00.000000+00:00"
    assert c.lower_bound(state, ALPHA) == utc(2023, 1, 1)


def test_pinning_one_repository_does_not_pin_another():
    initial = {BETA["uuid"]: {"updated_on": "2022-01-01T00:00:00.000000+00:00"}}
    state = copy.deepcopy(initial)
    c = cursors()
    c.observe(state, initial, ALPHA, "2030-01-01T00:00:00Z")
    c.observe(state, initial, BETA, "2023-01-01T00:00:00Z")
    assert state[BETA["uuid"]] == {"updated_on": "2023-01-01T00:00:00.000000+00:00"}
    assert "updated_on" not in state.get(ALPHA["uuid"], {})


def test_pin_uses_the_initial_legacy_cursor_and_drops_the_alias():
    initial = {"acme/alpha": {"updated_on": "2022-01-01T00:00:00Z"}}
    state = copy.deepcopy(initial)
    cursors().observe(state, initial, ALPHA, "2030-01-01T00:00:00Z")
    assert state == {ALPHA["uuid"]: {"updated_on": "2022-01-01T00:00:00.000000+00:00"}}


def test_pin_without_initial_cursor_when_first_record_is_future_dated_leaves_no_cursor():
    state = {}
    c = cursors()
    c.observe(state, {}, ALPHA, "2030-01-01T00:00:00Z")
    c.observe(state, {}, ALPHA, "2023-01-01T00:00:00Z")
    assert "updated_on" not in state.get(ALPHA["uuid"], {})
    assert c.lower_bound(state, ALPHA) == START_DATE


def test_stream_wide_cursor_is_pinned_too():
    initial = {"updated_on": "2022-01-01T00:00:00Z"}
    state = dict(initial)
    c = cursors()
    c.observe(state, initial, None, "2023-01-01T00:00:00Z")
    assert state == {"updated_on": "2023-01-01T00:00:00.000000+00:00"}
    c.observe(state, initial, None, "2030-01-01T00:00:00Z")
    c.observe(state, initial, None, "2023-06-01T00:00:00Z")
    assert state == {"updated_on": "2022-01-01T00:00:00.000000+00:00"}


@pytest.mark.parametrize("repository", [ALPHA, None], ids=["repository", "stream-wide"])
def test_pin_without_initial_cursor_after_an_earlier_record_leaves_no_cursor(repository):
    state = {}
    c = cursors()
    c.observe(state, {}, repository, "2023-01-01T00:00:00Z")
    c.observe(state, {}, repository, "2030-01-01T00:00:00Z")
    assert c.stored_cursor(state, repository) is None
    assert c.lower_bound(state, repository) == START_DATE


def test_alias_removal_never_deletes_the_stream_wide_cursor():
    odd = {"uuid": "{cccccccc-0000-0000-0000-000000000003}", "full_name": "acme/updated_on", "slug": "updated_on"}
    state = {"updated_on": "2023-06-01T00:00:00Z"}
    c = cursors()
    c.observe(state, {}, odd, "2023-07-01T00:00:00Z")
    assert c.lower_bound(state, BETA) == utc(2023, 6, 1)


# --- CommitFrontier ---------------------------------------------------------------------------

CHAIN = [("c4", ["c3"]), ("c3", ["c2"]), ("c2", ["c1"]), ("c1", [])]  # newest first


def frontier_tips(commits, previous=()):
    frontier = CommitFrontier(previous)
    for commit_hash, parents in commits:
        frontier.add(commit_hash, parents)
    return frontier.tips


def test_linear_chain_newest_first_has_the_newest_as_only_tip():
    assert frontier_tips(CHAIN) == {"c4"}


@pytest.mark.parametrize("order", list(itertools.permutations(CHAIN)))
def test_linear_chain_in_any_order_gives_the_same_tip(order):
    assert frontier_tips(order) == {"c4"}


MERGE = [("m", ["a", "b"]), ("a", ["base"]), ("b", ["base"]), ("base", [])]


@pytest.mark.parametrize("order", list(itertools.permutations(MERGE)))
def test_merge_commit_removes_both_parents_in_any_order(order):
    assert frontier_tips(order) == {"m"}


def test_two_unmerged_branches_are_two_tips():
    commits = [("x2", ["x1"]), ("y1", ["base"]), ("x1", ["base"]), ("base", [])]
    assert frontier_tips(commits) == {"x2", "y1"}


def test_previous_tips_referenced_as_parents_are_dropped():
    assert frontier_tips([("n2", ["n1"]), ("n1", ["old-a"])], previous=["old-a", "old-b"]) == {"n2", "old-b"}
    assert frontier_tips([("m", ["old-a", "old-b"])], previous=["old-a", "old-b"]) == {"m"}


def test_no_new_commits_keeps_previous_tips():
    previous = ["t2", "t1"]
    assert frontier_tips([], previous=previous) == {"t1", "t2"}
    assert previous == ["t2", "t1"]


def test_the_snapshot_is_sorted_and_keeps_every_tip():
    frontier = CommitFrontier(["e", "a", "d"])
    frontier.add("c", [])
    frontier.add("b", [])
    assert frontier.excluded == ["a", "d", "e"]  # published only by snapshot()
    assert frontier.snapshot() == ["a", "b", "c", "d", "e"] and frontier.excluded == ["a", "b", "c", "d", "e"]


def test_a_published_snapshot_is_never_changed_afterwards():
    frontier = CommitFrontier([])
    frontier.add("a", [])
    published = frontier.snapshot()
    frontier.add("b", ["a"])
    frontier.snapshot()
    assert published == ["a"] and frontier.excluded == ["b"]


def test_release_forgets_parents_but_keeps_the_tips():
    frontier = CommitFrontier([])
    frontier.add("b", ["a"])
    frontier.release()
    assert frontier.tips == {"b"} and frontier.snapshot() == ["b"]


# ----------------------------------------------------------------------------- cursors that cannot be used
SYNC_START = datetime(2026, 12, 1, tzinfo=timezone.utc)


def test_usable_cursors_keeps_good_cursors_and_every_other_key():
    state = {"{a}": {"date": "2026-11-30T00:00:00Z", "exclude": ["abc1234"]}, "legacy": "kept", "date": "2025-01-01T00:00:00Z"}
    usable = usable_cursors(state, "date", SYNC_START)
    assert usable.state == state and usable.problems == [] and usable.future == set()


@pytest.mark.parametrize("value, reason, future", [
    ("2099-01-01T00:00:00Z", "later than the start of this sync", {"", "{a}"}),
    ("2026-12-01T00:00:01+00:00", "later than the start of this sync", {"", "{a}"}),
    ("not a date", "cannot be read as a date-time", set()),
    ("2024-13-45T00:00:00Z", "cannot be read as a date-time", set()),
])
def test_usable_cursors_drops_a_future_or_unparsable_cursor_and_says_where(value, reason, future):
    state = {"{a}": {"updated_on": value}, "{b}": {"updated_on": "2026-01-01T00:00:00Z"}, "updated_on": value}
    usable = usable_cursors(state, "updated_on", SYNC_START)
    assert usable.state == {"{b}": {"updated_on": "2026-01-01T00:00:00Z"}}  # an entry left empty is removed
    assert len(usable.problems) == 2 and all(reason in p and repr(value) in p for p in usable.problems)
    assert any("repository {a}" in p for p in usable.problems) and any("stream-wide" in p for p in usable.problems)
    assert usable.future == future


def test_usable_cursors_keeps_the_rest_of_an_entry_whose_cursor_is_dropped():
    usable = usable_cursors({"{a}": {"date": "2099-01-01T00:00:00Z", "exclude": ["abc1234"]}}, "date", SYNC_START)
    assert usable.state == {"{a}": {"exclude": ["abc1234"]}}


def test_usable_cursors_does_not_touch_the_input_and_ignores_streams_without_a_cursor():
    state = {"{a}": {"date": "2099-01-01T00:00:00Z"}}
    usable_cursors(state, "date", SYNC_START)
    assert state == {"{a}": {"date": "2099-01-01T00:00:00Z"}}
    assert usable_cursors(state, "", SYNC_START).state == state


def test_a_held_repository_reads_from_the_sync_start_and_the_others_from_their_cursors():
    cursors = RepositoryCursors("updated_on", datetime(2020, 1, 1, tzinfo=timezone.utc), SYNC_START)
    usable = usable_cursors({"{a}": {"updated_on": "2099-01-01T00:00:00Z"}, "{b}": {"updated_on": "2026-01-01T00:00:00Z"}},
                            "updated_on", SYNC_START)
    cursors.hold(usable.future)
    ref = lambda uuid: {"uuid": uuid, "full_name": f"acme/{uuid}", "slug": uuid}  # noqa: E731
    assert cursors.lower_bound(usable.state, ref("{a}")) == SYNC_START
    assert cursors.lower_bound(usable.state, ref("{b}")) == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert cursors.lower_bound(usable.state, ref("{c}")) == datetime(2020, 1, 1, tzinfo=timezone.utc)


def test_a_future_stream_wide_cursor_holds_only_repositories_without_a_cursor_of_their_own():
    cursors = RepositoryCursors("updated_on", datetime(2020, 1, 1, tzinfo=timezone.utc), SYNC_START)
    usable = usable_cursors({"updated_on": "2099-01-01T00:00:00Z", "{b}": {"updated_on": "2026-01-01T00:00:00Z"}},
                            "updated_on", SYNC_START)
    cursors.hold(usable.future)
    ref = lambda uuid: {"uuid": uuid, "full_name": f"acme/{uuid}", "slug": uuid}  # noqa: E731
    assert cursors.lower_bound(usable.state, ref("{c}")) == SYNC_START
    assert cursors.lower_bound(usable.state, ref("{b}")) == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert cursors.lower_bound(usable.state, None) == SYNC_START  # the repositories stream's own cursor


# ----------------------------------------------------------------------------- get_updated_state
def test_get_updated_state_advances_the_record_s_repository_entry_and_keeps_emitted_entries_unchanged():
    cursors = RepositoryCursors("updated_on", START_DATE, SYNC_STARTED_AT)
    state = {"{a}": {"updated_on": "2024-01-01T00:00:00.000000+00:00"}}
    before = state["{a}"]
    record = {"repository_uuid": "{a}", "repository_full_name": "acme/a", "updated_on": "2024-02-01T10:00:00.5Z"}
    after = get_updated_state(state, record, cursors, {}, per_repository=True)
    assert after["{a}"] == {"updated_on": "2024-02-01T10:00:00.500000+00:00"}
    assert before == {"updated_on": "2024-01-01T00:00:00.000000+00:00"}  # a STATE already emitted keeps its value
    older = {"repository_uuid": "{a}", "repository_full_name": "acme/a", "updated_on": "2023-01-01T00:00:00Z"}
    assert get_updated_state(after, older, cursors, {}, per_repository=True)["{a}"]["updated_on"].startswith("2024-02-01")


def test_get_updated_state_stream_wide_and_the_safety_rule():
    cursors = RepositoryCursors("updated_on", START_DATE, SYNC_STARTED_AT)
    initial = {"updated_on": "2024-01-01T00:00:00.000000+00:00"}
    state = get_updated_state(dict(initial), {"updated_on": "2024-03-01T00:00:00Z"}, cursors, initial, per_repository=False)
    assert state == {"updated_on": "2024-03-01T00:00:00.000000+00:00"}
    during_the_sync = {"updated_on": format_datetime(SYNC_STARTED_AT)}
    assert get_updated_state(state, during_the_sync, cursors, initial, per_repository=False) == initial  # pinned
