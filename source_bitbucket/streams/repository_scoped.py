"""The base of the streams read once per repository: pull_requests, commits, deployments, environments,
pipelines, pipeline_steps."""

from __future__ import annotations

from abc import ABC
from typing import Any, Iterable, List, Mapping, MutableMapping, Optional
from urllib.parse import quote

import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.streams.http import HttpSubStream

from source_bitbucket.concurrency import SlicePrefetcher
from source_bitbucket.errors import error_detail
from source_bitbucket.dates import format_datetime
from source_bitbucket.state import repository_ref
from source_bitbucket.streams.base import BitbucketStream
from source_bitbucket.streams.pagination import ListingShifted
from source_bitbucket.streams.repositories import Repositories

PROGRESS_EVERY_RECORDS = 5000


class RepositoryScopedStream(HttpSubStream, BitbucketStream, ABC):
    """A stream read from ``GET /repositories/{workspace}/{repository uuid}/{resource}``, one slice
    per repository of the workspace.

    * Slices: ``{"repository": {"uuid", "full_name", "slug"}, "since": <ISO date-time>}``, from the
      parent's ``listing`` (a ``RepositoryListing``: read once per sync and shared by every such stream). ``since``
      is the repository's cursor in incremental mode (never earlier than ``start_date``) and
      ``start_date`` in full refresh mode.
    * Records gain ``repository_uuid`` and ``repository_full_name``, so that they can be joined
      and so that the primary key is unique across repositories.
    * State: one entry per repository uuid (see ``source_bitbucket.state``), advanced by
      ``get_updated_state`` as the records are emitted and checkpointed by the CDK after each
      repository; a repository seen for the first time starts at ``start_date``.
    * A 403 or 404 skips the repository for this stream with one warning (no access, feature off,
      deleted mid-sync); the sync goes on. A 403 that is Bitbucket's scope error fails the stream
      instead (``errors.missing_scopes``).
    * With ``num_workers`` > 1, ``read_slice`` runs on prefetch threads (see
      ``source_bitbucket.concurrency``), started by the first ``read_records``, while
      ``read_records`` emits the slices in order on the CDK's thread.
    """

    resource: str = ""
    skip_statuses = frozenset({403, 404})
    # Statuses that mean "the feature is off for this repository" (e.g. 404: Pipelines off), not a
    # problem: logged as one info line naming ``feature_off``, not a warning.
    feature_off_statuses: frozenset = frozenset()
    feature_off = ""
    state_per_repository = True

    def __init__(self, parent: Repositories, **kwargs: Any) -> None:
        super().__init__(parent=parent, **kwargs)
        self._progress = {"total": 0, "done": 0, "records": 0}
        self._slices: List[Mapping[str, Any]] = []
        self._slice_index: dict = {}
        self._prefetcher: Optional[SlicePrefetcher] = None

    def stream_slices(
        self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Mapping[str, Any]]:
        incremental = sync_mode == SyncMode.incremental
        slices = []
        repositories = self.parent.listing.records()
        self.recheck_state()  # the listing's answers told Bitbucket's clock
        for record in repositories:
            if not record.get("full_name"):
                self.logger.warning(f"{self.name}: repository {record['uuid']} has no full_name in the listing; skipped.")
                continue
            repository = repository_ref(record["uuid"], record["full_name"], record.get("slug"))
            slices.append(self.slice_for(repository, (stream_state or {}) if incremental else None))
        self._progress = {"total": len(slices), "done": 0, "records": 0}
        self._slices = slices
        self._slice_index = {s["repository"]["uuid"]: i for i, s in enumerate(slices)}
        self._prefetcher = None  # started by the first read_records, not here
        yield from slices

    def slice_for(self, repository: Mapping[str, str], stream_state: Optional[Mapping[str, Any]] = None) -> Mapping[str, Any]:
        """The slice of one repository ({uuid, full_name, slug}): ``since`` is its cursor in
        ``stream_state`` (incremental; never before ``start_date``) or ``start_date`` when
        ``stream_state`` is None (full refresh), plus the stream's ``slice_extras``."""
        incremental = stream_state is not None
        since = self.cursors.lower_bound(stream_state, repository) if incremental else self.config.start_date
        return {"repository": repository, "since": format_datetime(since), **self.slice_extras(repository, incremental)}

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        """Emit one repository's records (read ahead by the prefetcher when ``num_workers`` > 1),
        logging progress: records so far, repositories done of total."""
        progress = self._progress
        full_name = stream_slice["repository"]["full_name"]
        count = 0
        pages = self._pages(sync_mode, cursor_field, stream_slice, stream_state)
        for page in pages:
            for record in page:
                count += 1
                if count % PROGRESS_EVERY_RECORDS == 0:
                    self.logger.info(f"{self.name}: {full_name}: {count} records so far")
                yield record
                self.advance_state(record)
        self.on_slice_read(stream_slice)
        progress["done"] += 1
        progress["records"] += count
        note = self.progress_note()
        self.logger.info(
            f"{self.name}: {progress['done']}/{progress['total']} repositories read ({full_name}: {count} records; "
            f"{progress['records']} records in all{'; ' + note if note else ''})"
        )

    def _pages(self, sync_mode: SyncMode, cursor_field: Optional[List[str]], stream_slice: Mapping[str, Any],
               stream_state: Optional[Mapping[str, Any]]) -> Iterable[List[Mapping[str, Any]]]:
        """The pages of one repository: read here (one worker, or one repository), or handed over by
        the prefetcher, which the first call starts (its threads run ``read_slice`` for the next
        repositories while the CDK emits this one)."""
        if self.config.num_workers <= 1 or len(self._slices) <= 1:
            return self.read_slice(sync_mode, cursor_field, stream_slice, stream_state)
        if self._prefetcher is None:
            self._prefetcher = SlicePrefetcher(
                lambda s: self.read_slice(sync_mode, None, s, stream_state), self._slices, workers=self.config.num_workers
            )
        return self._prefetcher.items(self._slice_index[stream_slice["repository"]["uuid"]])

    def read_slice(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]],
        stream_slice: Mapping[str, Any],
        stream_state: Optional[Mapping[str, Any]],
    ) -> Iterable[List[Mapping[str, Any]]]:
        """Read one repository over HTTP (on a prefetch worker thread when ``num_workers`` > 1),
        grouping its records into lists of up to ``page_size``: whole groups travel from the reader
        thread to the CDK's loop (one queue operation per page, not per record)."""
        group: List[Mapping[str, Any]] = []
        for record in BitbucketStream.read_records(self, sync_mode, cursor_field, stream_slice, stream_state):
            group.append(record)
            if len(group) >= self.page_size:
                yield group
                group = []
        if group:
            yield group

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        """A repository was read to its end and its records emitted (on the CDK's thread, before the
        CDK checkpoints the slice): a hook for state written once per repository."""

    def progress_note(self) -> str:
        """More for the progress line logged after each repository (e.g. requests so far), or ""."""
        return ""

    def slice_extras(self, repository: Mapping[str, str], incremental: bool) -> Mapping[str, Any]:
        """More slice keys for one repository (e.g. the commits to exclude)."""
        return {}

    def first_page_path(self, stream_slice: Mapping[str, Any]) -> str:
        """``repositories/{workspace}/{repository uuid}/{resource_path}`` (the uuid survives renames)."""
        uuid = stream_slice["repository"]["uuid"]
        return f"repositories/{quote(self.config.workspace, safe='')}/{quote(uuid, safe='')}/{self.resource_path(stream_slice)}"

    def resource_path(self, stream_slice: Mapping[str, Any]) -> str:
        """The path below the repository: ``resource``."""
        return self.resource

    def partition_name(self, stream_slice: Mapping[str, Any]) -> str:
        return f"repository {stream_slice['repository']['full_name']}"

    def parse_response(
        self,
        response: requests.Response,
        *,
        stream_state: Mapping[str, Any],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        """The page's records; a 403 or 404 on the first page skips the partition (one warning), on
        a later page it means the listing shifted (the pages before were read: read it again)."""
        if self.is_skipped(response):
            if self._pages_followed():
                raise ListingShifted(f"HTTP {response.status_code} on a later page")
            self.on_partition_skipped(response, stream_slice or {})
            return
        yield from super().parse_response(response, stream_state=stream_state, stream_slice=stream_slice)

    def on_partition_skipped(self, response: requests.Response, stream_slice: Mapping[str, Any]) -> None:
        """Log the one line for a partition (a repository, or one of its pull requests) skipped after a
        403 or 404: an info line for a status in ``feature_off_statuses``, else a warning."""
        if response.status_code in self.feature_off_statuses:
            self.logger.info(f"{self.name}: none in {self.partition_name(stream_slice)} (HTTP {response.status_code}: {self.feature_off}).")
            return
        if response.status_code == 403:
            hint = "the token's account has no access to this repository (a missing scope would have stopped the stream)"
        else:
            hint = "it was deleted or renamed during the sync, or the feature is off"
        self.logger.warning(
            f"Skipping {self.partition_name(stream_slice)} for {self.skipped_for}: HTTP {response.status_code} "
            f"({error_detail(response)}); {hint}."
        )

    @property
    def skipped_for(self) -> str:
        """Who loses a skipped partition, for the warning: ``stream <name>``."""
        return f"stream {self.name}"

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        repository = stream_slice["repository"]
        record["repository_uuid"] = repository["uuid"]
        record["repository_full_name"] = repository["full_name"]
        yield record
