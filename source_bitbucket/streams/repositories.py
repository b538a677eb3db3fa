"""repositories: ``GET /repositories/{workspace}``."""

from __future__ import annotations

from typing import Any, Iterable, List, Mapping, MutableMapping, Optional
from urllib.parse import quote

from airbyte_cdk.models import SyncMode

from source_bitbucket.state import format_datetime
from source_bitbucket.streams.base import BitbucketStream


class Repositories(BitbucketStream):
    """The workspace's repositories. Primary key ``uuid``, cursor ``updated_on``, ``pagelen`` 100.

    Incremental reads filter on the server with BBQL ``q=updated_on>{cursor}`` and
    ``sort=updated_on`` (ascending, so the stream-wide cursor is safe to checkpoint);
    full refresh reads every repository. State: ``{"updated_on": <canonical date-time>}``.

    The same class, as a dedicated instance, is the parent of the repository-scoped streams:
    ``list_repositories()`` walks the unfiltered listing once per sync and remembers it.
    """

    name = "repositories"
    primary_key = "uuid"
    cursor_field = "updated_on"
    page_size = 100

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listing: Optional[List[Mapping[str, str]]] = None

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

    def get_updated_state(
        self, current_stream_state: MutableMapping[str, Any], latest_record: Mapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Advance the stream-wide ``updated_on`` cursor (``current_stream_state`` is updated in place)."""
        return self.cursors.observe(current_stream_state, self._initial_state, None, latest_record.get(self.cursor_field))

    def list_repositories(self) -> Iterable[Mapping[str, str]]:
        """Every repository of the workspace as ``{"uuid", "full_name", "slug"}``, in listing order.

        The first call reads the listing (lazily, page by page); later calls replay it.
        """
        if self._listing is not None:
            yield from self._listing
            return
        listing = []
        for record in self.read_only_records():
            if isinstance(record, Mapping):
                repository = {"uuid": record["uuid"], "full_name": record["full_name"], "slug": record.get("slug") or record["full_name"].split("/", 1)[-1]}
                listing.append(repository)
                yield repository
        self._listing = listing
