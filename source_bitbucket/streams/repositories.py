"""repositories: ``GET /repositories/{workspace}``."""

from __future__ import annotations

import threading
from typing import Any, Iterable, List, Mapping, Optional
from urllib.parse import quote

from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.core import StreamData

from source_bitbucket.dates import format_datetime
from source_bitbucket.streams.base import BitbucketStream


class Repositories(BitbucketStream):
    """The workspace's repositories. Primary key ``uuid``, cursor ``updated_on``, ``pagelen`` 100.

    Incremental reads filter on the server with BBQL ``q=updated_on>{cursor}`` and
    ``sort=updated_on``; full refresh reads every repository. State:
    ``{"updated_on": <canonical date-time>}``, written once the listing has been walked without a
    shift (see ``BitbucketStream``).

    A dedicated instance is the parent of the repository-scoped streams and the
    ``shared_listing`` of the synced instance: ``list_repositories()`` walks the unfiltered
    listing once per sync and remembers it, so a full sync requests each listing page once.
    """

    name = "repositories"
    primary_key = "uuid"
    cursor_field = "updated_on"
    page_size = 100
    required_scope = "read:repository:bitbucket"

    def __init__(self, shared_listing: Optional["Repositories"] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shared_listing = shared_listing
        self._listing: Optional[List[Mapping[str, Any]]] = None
        self._listing_lock = threading.Lock()

    def first_page_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"repositories/{quote(self.config.workspace, safe='')}"

    def stream_slices(
        self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Mapping[str, Any]]:
        if sync_mode == SyncMode.incremental:
            yield {"since": format_datetime(self.cursors.lower_bound(stream_state or {}, None))}
        else:
            yield {}

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        if "since" not in stream_slice:
            return {}
        return {"q": f"updated_on>{stream_slice['since']}", "sort": "updated_on"}

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        """Full refresh replays the shared listing (read once per sync for every stream that needs
        it); incremental reads its own server-side filtered window."""
        if self.shared_listing is not None and "since" not in (stream_slice or {}):
            records: Iterable[StreamData] = self.shared_listing.list_repositories()
        else:
            records = super().read_records(sync_mode, cursor_field, stream_slice, stream_state)
        for record in records:
            yield record
            self.advance_state(record)  # the stream-wide cursor (state_per_repository is False)

    def list_repositories(self) -> List[Mapping[str, Any]]:
        """Every repository record of the workspace (unfiltered, listing order).

        The first call reads the whole listing; later calls (from any stream or thread) get the
        same list without a request.
        """
        with self._listing_lock:
            if self._listing is None:
                by_uuid = {r["uuid"]: r for r in self.read_only_records() if isinstance(r, Mapping)}  # a re-read walk repeats
                self._listing = list(by_uuid.values())
            return self._listing
