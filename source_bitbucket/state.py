"""Cursor values and per-repository state.

State of a repository-scoped stream (pull_requests, commits, deployments) is one entry per
repository, keyed by the repository uuid (which survives renames)::

    {"{0b1c...}": {"updated_on": "2024-05-01T10:00:00.000000+00:00"}, ...}

Cursor values are compared as parsed UTC datetimes (the API mixes ``+00:00``, ``Z``, trimmed
fractions and no fraction) and always written in one canonical form,
``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``.

Dates are parsed and formatted by ``source_bitbucket.dates``. Older state shapes are accepted: a single stream-wide cursor (``{"updated_on": ...}``) and
entries keyed by ``workspace/slug`` or by ``slug``; they are read as fallbacks and replaced by
uuid-keyed entries as repositories are synced.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Set

from source_bitbucket.dates import format_datetime, parse_datetime

CLOCK_SKEW_MARGIN_SECONDS = 60


@dataclass
class UsableState:
    """What ``usable_cursors`` makes of an incoming stream state.

    Attributes:
        state: the incoming state without the dropped cursors (what is kept and written back).
        problems: one sentence per dropped cursor, naming where it was and its value.
        future: the keys whose cursor was later than the sync's start (``""`` for the
            stream-wide cursor): this sync reads them from the sync's start (``RepositoryCursors.hold``).
    """

    state: Dict[str, Any]
    problems: List[str]
    future: Set[str]


def usable_cursors(state: Mapping[str, Any], cursor_field: str, sync_started_at: datetime) -> UsableState:
    """Split an incoming stream state into the part that can be used and the cursors to drop.

    A cursor value (stream-wide ``state[cursor_field]`` or a repository's
    ``state[key][cursor_field]``) is dropped from the state that is kept and written back when:

    * it cannot be parsed: the repository is read from an older cursor or ``start_date``;
    * it is later than the start of this sync (hand-edited or damaged: no record read so far can
      be dated after the sync started). Trusted and written back, it would make every later sync
      read nothing. This sync treats it as the sync's start (so it reads nothing new there, which
      is what Airbyte's "read with a future state" acceptance test expects), and since it is not
      written back, the next sync reads that repository from an older cursor or ``start_date``
      (duplicates, never losses).

    Other keys of an entry (e.g. commits' ``exclude``) are kept; an entry left empty is removed.
    """
    clean: Dict[str, Any] = dict(state or {})
    result = UsableState(clean, [], set())
    if not cursor_field:
        return result

    def drop(key: str, where: str, value: Any) -> bool:
        parsed = parse_datetime(value)
        if parsed is not None and parsed <= sync_started_at:
            return False
        if parsed is None:
            reason = "cannot be read as a date-time: that part is read from an older cursor or start_date"
        else:
            reason = (
                f"is later than the start of this sync ({format_datetime(sync_started_at)}): this sync reads from its "
                "start there, and the next one from an older cursor or start_date"
            )
            result.future.add(key)
        result.problems.append(f"the {where} {value!r} {reason}")
        return True

    if clean.get(cursor_field) is not None and drop("", f"stream-wide {cursor_field} cursor", clean[cursor_field]):
        del clean[cursor_field]
    for key, entry in list(clean.items()):
        if not isinstance(entry, Mapping) or entry.get(cursor_field) is None:
            continue
        if drop(key, f"{cursor_field} cursor of repository {key}", entry[cursor_field]):
            rest = {k: v for k, v in entry.items() if k != cursor_field}
            if rest:
                clean[key] = rest
            else:
                del clean[key]
    return result


class SyncClock:
    """When this sync started, by the earlier of two clocks: the local one, and Bitbucket's (the
    ``Date`` header of the earliest answer seen, 1 s resolution). Record dates come from
    Bitbucket's clock. One instance is shared by every stream of a sync, so a stream whose state is
    set after another stream's first answer already knows Bitbucket's clock."""

    def __init__(self, local_start: datetime) -> None:
        self.local_start = local_start
        self._server: Optional[datetime] = None

    def observe_server_time(self, http_date: Optional[str]) -> None:
        """Note an HTTP ``Date`` header (ignored when absent or unparsable); any thread may call it."""
        try:
            when = parsedate_to_datetime(http_date) if http_date else None
        except (TypeError, ValueError, OverflowError):
            when = None
        if when is not None:
            when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
            if self._server is None or when < self._server:
                self._server = when

    @property
    def start(self) -> datetime:
        """The sync's start: the local start, or Bitbucket's time at its first answer (less its
        1 s resolution) when that is earlier."""
        if self._server is None:
            return self.local_start
        return min(self.local_start, self._server - timedelta(seconds=1))


class RepositoryCursors:
    """Reads and advances one stream's per-repository cursors.

    ``lower_bound`` gives where a repository's next read starts; ``observe`` is the body of
    ``get_updated_state``.

    Safety rule (nothing lost): a cursor never moves to a value at or after the sync's start
    (minus a clock-skew margin). A record dated there was updated during this sync, or is dated
    in the future; ascending, page-numbered listings may have shifted under us, so the
    repository's cursor stays where this sync started it and the next sync reads that window
    again (duplicates are possible, losses are not).

    "The sync's start" is the earlier of the local clock's and Bitbucket's: the ``Date`` header of
    the first answer (``observe_server_time``). Record dates come from Bitbucket's clock, so with
    the local clock alone, a local clock running ahead of Bitbucket's would let a record changed
    during the sync look older than the sync and move the cursor past an item that a shifting
    listing skipped.
    """

    def __init__(
        self, cursor_field: str, start_date: datetime, sync_started_at: datetime, clock: Optional[SyncClock] = None
    ) -> None:
        self.cursor_field = cursor_field
        self.start_date = start_date
        self.sync_started_at = sync_started_at
        self.clock = clock or SyncClock(sync_started_at)
        self._pinned: Set[str] = set()
        self._held: Set[str] = set()

    @property
    def ceiling(self) -> float:
        """No cursor moves to this POSIX time or later: the sync's start (``SyncClock``) minus the margin."""
        return self.clock.start.timestamp() - CLOCK_SKEW_MARGIN_SECONDS

    def observe_server_time(self, http_date: Optional[str]) -> None:
        """Note Bitbucket's clock (an HTTP ``Date`` header): see ``SyncClock``."""
        self.clock.observe_server_time(http_date)

    def hold(self, keys: Iterable[str]) -> None:
        """Read these state keys (repository keys, ``""`` = the stream-wide cursor) from the sync's
        start in this sync: their stored cursor was in the future (``usable_cursors``)."""
        self._held |= set(keys)

    def stored_cursor(self, state: Mapping[str, Any], repository: Optional[Mapping[str, str]]) -> Optional[datetime]:
        """The cursor stored for ``repository`` ({uuid, full_name, slug}), looked up by uuid, then by the
        older keys (full_name, slug), then the stream-wide cursor; None if there is none.
        ``repository=None`` reads the stream-wide cursor (the repositories stream's own state)."""
        for key in _keys(repository):
            entry = state.get(key)
            if isinstance(entry, Mapping) and entry.get(self.cursor_field):
                return parse_datetime(entry[self.cursor_field])
        return parse_datetime(state.get(self.cursor_field))

    def is_held(self, state: Mapping[str, Any], repository: Optional[Mapping[str, str]]) -> bool:
        """Whether ``repository`` (None: the stream-wide cursor) is read from the sync's start in this
        sync because its stored cursor, or the stream-wide one it falls back to, was in the future."""
        keys = _keys(repository)
        if any(key in self._held for key in keys):
            return True
        own = any(isinstance(state.get(k), Mapping) and state[k].get(self.cursor_field) for k in keys)
        return not own and "" in self._held

    def lower_bound(self, state: Mapping[str, Any], repository: Optional[Mapping[str, str]]) -> datetime:
        """Where the next read starts: the later of the stored cursor and ``start_date``; the sync's
        start where the stored cursor was in the future (``hold``)."""
        if self.is_held(state, repository):
            return self.sync_started_at
        stored = self.stored_cursor(state, repository)
        return max(stored, self.start_date) if stored else self.start_date

    def observe(
        self,
        state: MutableMapping[str, Any],
        initial_state: Mapping[str, Any],
        repository: Optional[Mapping[str, str]],
        value: Any,
    ) -> MutableMapping[str, Any]:
        """Advance the cursor of ``repository`` (None: the stream-wide cursor) to ``value`` (an API
        date-time) if it is later, under the safety rule.

        Mutates ``state`` in place, replacing the repository's entry with a new dict so that STATE
        messages already emitted keep their values, and returns it.
        """
        observed = parse_datetime(value)
        key = repository["uuid"] if repository else ""
        if observed is None or key in self._pinned:
            return state
        if observed.timestamp() >= self.ceiling:
            self._pinned.add(key)
            new_value = self.stored_cursor(initial_state, repository)
        else:
            current = self.stored_cursor(state, repository)
            new_value = observed if current is None or observed > current else current
        if repository is None:
            _set_cursor(state, self.cursor_field, new_value)
            return state
        current_entry = state.get(key)
        entry = dict(current_entry) if isinstance(current_entry, Mapping) else {}
        _set_cursor(entry, self.cursor_field, new_value)
        for alias in _keys(repository)[1:]:
            if isinstance(state.get(alias), Mapping):
                del state[alias]
        state[key] = entry
        return state


def _set_cursor(target: MutableMapping[str, Any], field: str, value: Optional[datetime]) -> None:
    if value is None:
        target.pop(field, None)
    else:
        target[field] = format_datetime(value)


def _keys(repository: Optional[Mapping[str, str]]) -> list:
    if not repository:
        return []
    keys = [repository.get("uuid"), repository.get("full_name"), repository.get("slug")]
    return [k for k in dict.fromkeys(keys) if k]


def repository_ref(uuid: str, full_name: str, slug: Optional[str] = None) -> Mapping[str, str]:
    """The ``{uuid, full_name, slug}`` that names a repository in slices and state lookups."""
    return {"uuid": uuid, "full_name": full_name, "slug": slug or full_name.split("/", 1)[-1]}


def repository_of(record: Mapping[str, Any]) -> Mapping[str, str]:
    """The repository a record of a repository-scoped stream came from (its parent fields)."""
    return repository_ref(record["repository_uuid"], record["repository_full_name"])


def get_updated_state(
    state: MutableMapping[str, Any],
    record: Mapping[str, Any],
    cursors: RepositoryCursors,
    initial_state: Mapping[str, Any],
    per_repository: bool,
) -> MutableMapping[str, Any]:
    """The stream state once ``record`` has been emitted: the one rule every incremental stream follows.

    ``per_repository``: the record's repository entry (``state[repository_uuid][cursor_field]``)
    advances; otherwise the stream-wide ``state[cursor_field]``. The cursor moves to the record's
    cursor value when that is later, under ``RepositoryCursors``' safety rule (never to a value at
    or after the sync's start: then the entry stays as ``initial_state`` had it). ``state`` is
    updated in place (its entry replaced by a new dict, so STATE messages already emitted keep
    their values) and returned. Called by the streams on the CDK's thread, after the record was
    handed to the CDK; the CDK reads the result through the streams' ``state`` property.
    """
    repository = repository_of(record) if per_repository else None
    return cursors.observe(state, initial_state, repository, record.get(cursors.cursor_field))
