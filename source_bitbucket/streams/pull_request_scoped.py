"""The base of the streams read once per pull request (``/pullrequests/{id}/...``), and the one
pull request listing each sync shares between them."""

from __future__ import annotations

import threading
from abc import ABC
from datetime import datetime
from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Tuple

from airbyte_cdk.models import SyncMode

from source_bitbucket.dates import parse_datetime
from source_bitbucket.streams.base import BitbucketStream
from source_bitbucket.streams.pull_requests import PULL_REQUEST_REF_FIELDS, PullRequests, pull_request_ref
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream


class PullRequestRefs(PullRequests):
    """The reader of ``PullRequestListing``: the pull_requests endpoint, same ``state``, ``q`` and
    ``sort`` as the ``pull_requests`` stream, trimmed with ``fields=`` to ``PULL_REQUEST_REF_FIELDS``
    (Bitbucket's partial responses). Not a registered stream; it keeps no state. ``readers``: the names
    of the streams it reads for (set by the source), named in its skip warning."""

    readers: Tuple[str, ...] = ()
    listings = ()  # it reads for the listing; it feeds none

    @property
    def skipped_for(self) -> str:
        return f"streams {', '.join(self.readers) or self.name} (their shared pull request listing)"

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        wanted = ",".join(f"values.{field}" for field in PULL_REQUEST_REF_FIELDS)
        return {**super().first_page_params(stream_state, stream_slice), "fields": f"{wanted},next,page,pagelen,size"}


class PullRequestListing:
    """The pull requests of each repository updated after a date, read once per sync and shared by
    every pull-request-scoped stream.

    ``remember`` takes what the pull_requests stream read of a repository (it comes first in the
    registry), so a sync that reads both walks each listing once. Otherwise ``pull_requests(repository, since)`` reads ``GET /repositories/{workspace}/{uuid}/pullrequests``
    (``q=updated_on>{since}``, ascending ``sort=updated_on``, the configured states; every page, with
    the usual shift detection) the first time a repository is asked for, and answers later calls
    for a ``since`` at or after the one read from the remembered list, without a request. A later
    call with an earlier ``since`` (a stream whose cursor lags) reads that repository again. Each
    pull request is a ref: ``{"id", "updated_on", "comment_count", "state"}``, ascending
    ``updated_on``. A 403 or 404 on the listing (no access, repository deleted) gives ``[]``, with
    one warning naming the streams that read it. Thread-safe (prefetch threads ask for different
    repositories at once).
    """

    def __init__(self, reader: PullRequestRefs) -> None:
        self.reader = reader
        self._read: Dict[str, Tuple[datetime, List[Mapping[str, Any]]]] = {}
        self._locks: Dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def remember(self, repository: Mapping[str, str], since: str, refs: Iterable[Mapping[str, Any]]) -> None:
        """Take the refs of ``repository``'s pull requests updated after ``since`` (ISO date-time) from a
        complete walk made by the pull_requests stream, unless a wider window (an earlier ``since``) is
        already known."""
        bound = parse_datetime(since)
        if bound is None:
            return
        with self._lock(repository["uuid"]):
            self._keep(repository["uuid"], bound, refs)

    def pull_requests(self, repository: Mapping[str, str], since: str) -> List[Mapping[str, Any]]:
        """The refs of ``repository`` ({uuid, full_name, slug}) updated after ``since`` (ISO date-time)."""
        uuid = repository["uuid"]
        bound = parse_datetime(since)
        with self._lock(uuid):
            known = self._read.get(uuid)
            if known is None or bound < known[0]:
                stream_slice = {"repository": repository, "since": since}
                by_id = {}
                for record in BitbucketStream.read_records(self.reader, SyncMode.full_refresh, None, stream_slice, None):
                    by_id[record["id"]] = pull_request_ref(record)
                self._keep(uuid, bound, by_id.values())
            known = self._read[uuid]
        return [ref for ref in known[1] if (parse_datetime(ref["updated_on"]) or bound) > bound]

    def _lock(self, uuid: str) -> threading.Lock:
        """The lock of one repository's entry (one walk at a time per repository)."""
        with self._guard:
            return self._locks.setdefault(uuid, threading.Lock())

    def _keep(self, uuid: str, bound: datetime, refs: Iterable[Mapping[str, Any]]) -> None:
        """Store the refs after ``bound``, ascending ``updated_on``, unless a wider window is known
        (the caller holds the repository's lock)."""
        known = self._read.get(uuid)
        if known is None or bound < known[0]:
            self._read[uuid] = (bound, sorted(refs, key=lambda ref: parse_datetime(ref["updated_on"]) or bound))


class PullRequestScopedStream(RepositoryScopedStream, ABC):
    """A stream read from ``GET /repositories/{workspace}/{uuid}/pullrequests/{id}/{resource}``,
    once per pull request updated since the repository's cursor.

    * Slices: one per repository, as for ``RepositoryScopedStream``; ``read_slice`` walks the
      resource of each pull request the shared ``PullRequestListing`` gives for the slice's
      ``since`` and that ``wants`` (e.g. only those with comments), oldest update first.
    * Records gain ``repository_uuid``, ``repository_full_name``, ``pull_request_id`` (the parents'
      keys: primary keys start with ``repository_uuid``, ``pull_request_id``) and
      ``pull_request_updated_on``, the cursor: the version of the pull request they were read at, so
      a deduplicating destination keeps the rows of its latest version.
    * State: ``{repository uuid: {"pull_request_updated_on": <date-time>}}``: every pull request of
      the repository updated up to then has been read. It advances with the records and, once the
      repository is read, to its newest pull request read (those that gave no rows count as read);
      checkpointed after each repository, never inside it, under ``RepositoryCursors``' safety rule.
    * A 403 or 404 on one pull request's resource skips that pull request with one warning (a
      deleted fork, a feature off); Bitbucket's scope error fails the stream, as for every stream.
    """

    cursor_field = "pull_request_updated_on"
    listings = ("pull_request_listing",)

    def __init__(self, pull_request_listing: PullRequestListing, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pull_request_listing = pull_request_listing

    def wants(self, pull_request: Mapping[str, Any]) -> bool:
        """Whether to read this pull request's resource (a ref: ``PULL_REQUEST_REF_FIELDS``)."""
        return True

    def pull_requests_of(self, stream_slice: Mapping[str, Any]) -> List[Mapping[str, Any]]:
        """The pull requests of the slice's repository to read: updated after ``since``, ``wants``."""
        refs = self.pull_request_listing.pull_requests(stream_slice["repository"], stream_slice["since"])
        return [ref for ref in refs if self.wants(ref)]

    def read_slice(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]],
        stream_slice: Mapping[str, Any],
        stream_state: Optional[Mapping[str, Any]],
    ) -> Iterable[List[Mapping[str, Any]]]:
        """The pages of one repository: each selected pull request's resource, one walk each."""
        for pull_request in self.pull_requests_of(stream_slice):
            yield from super().read_slice(sync_mode, cursor_field, {**stream_slice, "pull_request": pull_request}, stream_state)

    def resource_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"pullrequests/{stream_slice['pull_request']['id']}/{self.resource}"

    def partition_name(self, stream_slice: Mapping[str, Any]) -> str:
        repository = super().partition_name(stream_slice)
        pull_request = stream_slice.get("pull_request")
        return f"pull request #{pull_request['id']} of {repository}" if pull_request else repository

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        pull_request = stream_slice["pull_request"]
        record["pull_request_id"] = pull_request["id"]
        record["pull_request_updated_on"] = pull_request["updated_on"]
        yield from super().transform(record, stream_slice)

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        """The repository is read: its cursor moves to its newest pull request read (on the CDK's
        thread, from the listing already read: no request)."""
        pull_requests = self.pull_request_listing.pull_requests(stream_slice["repository"], stream_slice["since"])
        if pull_requests:  # those ``wants`` left out have no rows to read: they count as read too
            repository = stream_slice["repository"]
            self.advance_state({"repository_uuid": repository["uuid"], "repository_full_name": repository["full_name"],
                                self.cursor_field: pull_requests[-1]["updated_on"]})
