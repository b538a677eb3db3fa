"""commits: ``GET /repositories/{workspace}/{repository}/commits``."""

from __future__ import annotations

import re

from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional

import requests
from airbyte_cdk.models import SyncMode

from source_bitbucket.state import CommitFrontier, format_datetime, parse_datetime
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream

MAX_EXCLUDED_TIPS = 100
_HASH = re.compile(r"^[0-9a-f]{7,64}$")


class Commits(RepositoryScopedStream):
    """Commits of every branch and tag of every repository. Primary key (``repository_uuid``,
    ``hash``), cursor ``date``, ``pagelen`` 100.

    The endpoint lists all branches in topological order, not date order, and has no date
    filter, so no date can tell where the new commits end: a branch merged (or pushed) late
    brings old-dated commits that are new to us. The stop rule is therefore the server's
    own: the state keeps, per repository, the tips of the commit graph already read, and the
    next sync asks for ``exclude=<tip>`` (repeated), which lists exactly the commits not
    reachable from them. Nothing is lost and nothing is read twice; an unchanged repository
    costs one request. Commits dated before ``start_date`` are read but not emitted.

    State per repository: ``{"date": <latest commit date>, "exclude": [<40-char hashes>]}``.
    If Bitbucket no longer knows an excluded hash (history rewritten and collected), it answers
    404; the repository is then read again in full (duplicates, not losses) and the tips rebuilt.
    State without ``exclude`` (older shapes) is read in full once, emitting the commits dated
    after its ``date``.
    """

    name = "commits"
    primary_key = ["repository_uuid", "hash"]
    cursor_field = "date"
    page_size = 100
    required_scope = "read:repository:bitbucket"
    resource = "commits"
    detect_shifts = False  # iterator pagination over a snapshot: nothing slides between pages

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._frontiers: Dict[str, CommitFrontier] = {}
        self._stale_exclude: set = set()

    def slice_extras(self, repository: Mapping[str, str], incremental: bool) -> Mapping[str, Any]:
        entry = self.state.get(repository["uuid"]) if incremental else None
        exclude = entry.get("exclude") if isinstance(entry, Mapping) else None
        # hand-edited or damaged state: keep only commit hashes, at most the usual number
        exclude = sorted({h for h in exclude if isinstance(h, str) and _HASH.match(h)})[:MAX_EXCLUDED_TIPS] if isinstance(exclude, list) else []
        if exclude:  # the server lists exactly the new commits, whatever their date
            return {"exclude": exclude, "since": format_datetime(self.config.start_date)}
        return {"exclude": []}

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"exclude": stream_slice["exclude"]} if stream_slice["exclude"] else {}

    def read_slice(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]],
        stream_slice: Mapping[str, Any],
        stream_state: Optional[Mapping[str, Any]],
    ) -> Iterable[Mapping[str, Any]]:
        uuid = stream_slice["repository"]["uuid"]
        self._frontiers[uuid] = CommitFrontier(stream_slice["exclude"], MAX_EXCLUDED_TIPS)
        yield from super().read_slice(sync_mode, cursor_field, stream_slice, stream_state)
        if uuid in self._stale_exclude:
            self._stale_exclude.discard(uuid)
            self.logger.warning(
                f"commits: Bitbucket no longer knows a commit read earlier from {stream_slice['repository']['full_name']}; "
                "reading the repository's commits again in full."
            )
            self._frontiers[uuid] = CommitFrontier([], MAX_EXCLUDED_TIPS)
            rescan = {**stream_slice, "exclude": [], "since": format_datetime(self.config.start_date)}
            yield from super().read_slice(sync_mode, cursor_field, rescan, stream_state)
        self._frontiers[uuid].release()

    def parse_response(self, response: requests.Response, *, stream_state, stream_slice=None, next_page_token=None):
        """Read a whole page into the frontier before emitting it, so that the state written after
        any of its commits already holds the tips up to the end of the page."""
        uuid = stream_slice["repository"]["uuid"]
        if response.status_code == 404 and stream_slice["exclude"]:
            self._stale_exclude.add(uuid)
            return
        pages = list(super().parse_response(response, stream_state=stream_state, stream_slice=stream_slice))
        self._frontiers[uuid].snapshot()
        yield from pages

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        self._frontiers[stream_slice["repository"]["uuid"]].add(
            record.get("hash"), [p.get("hash") for p in record.get("parents") or [] if isinstance(p, Mapping)]
        )
        date = parse_datetime(record.get("date"))
        if date is None or date > parse_datetime(stream_slice["since"]):
            yield from super().transform(record, stream_slice)

    def get_updated_state(
        self, current_stream_state: MutableMapping[str, Any], latest_record: Mapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Advance the repository's ``date`` and replace its ``exclude`` with the current tips."""
        state = super().get_updated_state(current_stream_state, latest_record)
        uuid = latest_record["repository_uuid"]
        state[uuid] = {**state[uuid], "exclude": self._frontiers[uuid].excluded}
        return state
