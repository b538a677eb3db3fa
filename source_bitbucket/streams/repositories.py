"""repositories: ``GET /repositories/{workspace}``, and the one listing of them each sync shares."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, List, Mapping, MutableMapping, Optional
from urllib.parse import quote

from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.core import StreamData

from source_bitbucket.dates import parse_datetime
from source_bitbucket.streams.base import BitbucketStream
from source_bitbucket.streams.updated_since import UpdatedSinceCursor


class RepositoryListing:
    """Every repository record of the workspace (unfiltered, in listing order), read once per sync.

    The first call of ``records`` reads the whole listing (``GET /repositories/{workspace}``,
    every page) with ``read``; later calls, from any stream or thread, get the same list without a
    request. Its users: the repository-scoped streams (one slice per repository) and the
    ``repositories`` stream in full refresh. A walk that was read again after a shift repeats
    records; each repository is kept once (by uuid). A failed read is not remembered: the next
    call reads again.
    """

    def __init__(self, read: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._read = read
        self._records: Optional[List[Mapping[str, Any]]] = None
        self._lock = threading.Lock()
        self.on_read: Callable[[int], None] = lambda count: None  # told the repository count once the listing is read

    def records(self) -> List[Mapping[str, Any]]:
        """The repository records, ``[{"uuid", "full_name", "slug", "updated_on", ...}, ...]``."""
        with self._lock:
            if self._records is None:
                by_uuid = {r["uuid"]: r for r in self._read() if isinstance(r, Mapping)}
                self._records = list(by_uuid.values())
                self.on_read(len(self._records))
            return self._records


def updated_after(records: Iterable[Mapping[str, Any]], since: str) -> List[Mapping[str, Any]]:
    """The repository records with ``updated_on`` after ``since`` (compared as instants), oldest
    first: what ``q=updated_on>{since}&sort=updated_on`` answers. A record without a readable
    ``updated_on`` is kept (the server cannot say it is older either; duplicates, never losses)."""
    bound = parse_datetime(since)
    dated = [(parse_datetime(r.get("updated_on")), r) for r in records]
    kept = [(updated, r) for updated, r in dated if updated is None or bound is None or updated > bound]
    return [r for _, r in sorted(kept, key=lambda pair: (pair[0] is not None, pair[0].timestamp() if pair[0] else 0.0))]


class Repositories(UpdatedSinceCursor, BitbucketStream):
    """The workspace's repositories. Primary key ``uuid``, cursor ``updated_on``, ``pagelen`` 100.

    Full refresh emits ``listing`` (the ``RepositoryListing`` the repository-scoped streams share, so
    a full sync requests each listing page once). Incremental: when a repository-scoped stream is
    selected too (``listing_read_anyway``, set by the source from the catalog), the shared listing
    is filtered here (``updated_on`` after the cursor, ascending, as the server would), so the listing
    is requested once per sync; alone, the stream filters on the server with BBQL
    ``q=updated_on>{cursor}`` and ``sort=updated_on`` (fewer pages). State:
    ``{"updated_on": <canonical date-time>}``, written once the listing has been walked without a
    shift (see ``BitbucketStream``).

    Only the repositories of the config's selection (``source_bitbucket.selection``) are listed: its
    ``projects`` go to the server as BBQL, the rest is filtered here, so the listing every
    repository-scoped stream shares holds only those.
    """

    name = "repositories"
    primary_key = "uuid"
    cursor_field = "updated_on"
    page_size = 100
    required_scope = "read:repository:bitbucket"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listing = RepositoryListing(self._read_listing)
        self.listing_read_anyway = False  # a repository-scoped stream of this sync reads the whole listing

    def first_page_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"repositories/{quote(self.config.workspace, safe='')}"

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        params = dict(super().first_page_params(stream_state, stream_slice))
        projects = self.config.selection.bbql()
        if projects:
            params["q"] = f"({projects}) AND {params['q']}" if "q" in params else projects
        return params

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        if self.config.selection.keeps(record):
            yield from super().transform(record, stream_slice)

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        """Full refresh emits the shared listing; incremental filters it here when it is read anyway,
        else reads its own server-side filtered window."""
        since = (stream_slice or {}).get("since")
        if since is None:
            records: Iterable[StreamData] = self.listing.records()
        elif self.listing_read_anyway:
            records = updated_after(self.listing.records(), since)
        else:
            records = super().read_records(sync_mode, cursor_field, stream_slice, stream_state)
        for record in records:
            yield record
            self.advance_state(record)  # the stream-wide cursor (state_per_repository is False)

    def _read_listing(self) -> Iterable[StreamData]:
        """Every page of the unfiltered listing (the ``RepositoryListing``'s reader; no state involved)."""
        return BitbucketStream.read_records(self, SyncMode.full_refresh, None, {}, None)
