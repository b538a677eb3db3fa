"""The one slice of a workspace-level listing read incrementally with BBQL (repositories, projects)."""

from __future__ import annotations

from typing import Any, Iterable, List, Mapping, Optional

from airbyte_cdk.models import SyncMode

from source_bitbucket.dates import format_datetime


class UpdatedSinceCursor:
    """A mixin for a ``BitbucketStream`` with a stream-wide ``updated_on`` cursor whose endpoint filters
    with BBQL: full refresh is one slice ``{}`` (every item); incremental is one slice
    ``{"since": <the cursor, never before start_date>}``, asked as ``q=updated_on>{since}`` and
    ``sort=updated_on`` (ascending, so the cursor only grows along the walk).
    Source: https://developer.atlassian.com/cloud/bitbucket/rest/intro/#filtering
    """

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
