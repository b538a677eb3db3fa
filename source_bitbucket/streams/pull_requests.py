"""pull_requests: ``GET /repositories/{workspace}/{repository}/pullrequests``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Set

import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.core import StreamData

from source_bitbucket.streams.repository_scoped import RepositoryScopedStream

if TYPE_CHECKING:
    from source_bitbucket.streams.pull_request_scoped import PullRequestListing

# What the pull-request-scoped streams need of a pull request: all the shared listing keeps of one.
PULL_REQUEST_REF_FIELDS = ("id", "updated_on", "comment_count", "state")


def pull_request_ref(record: Mapping[str, Any]) -> Dict[str, Any]:
    """A pull request reduced to ``PULL_REQUEST_REF_FIELDS`` (missing ones None)."""
    return {field: record.get(field) for field in PULL_REQUEST_REF_FIELDS}


class PullRequests(RepositoryScopedStream):
    """Pull requests of every repository. Primary key (``repository_uuid``, ``id``), cursor ``updated_on``.

    ``pagelen`` 50 (the endpoint's maximum; 100 answers 400 "Invalid pagelen"). The configured
    states are sent as repeated ``state`` parameters (with none, the API returns only OPEN).
    The collection leaves out ``participants`` and ``reviewers`` (https://developer.atlassian.com/cloud/bitbucket/rest/intro/#partial-response:
    they come only from a pull request's own URL); ``fields=+values.participants,+values.reviewers``
    adds them without a request per pull request. The window is filtered on the server with
    ``q=updated_on>{since}`` and read in ascending ``sort=updated_on``. State is written once per
    repository, after a walk of its listing that saw no shift (see ``BitbucketStream``).

    A repository read to its end hands its pull requests to the ``PullRequestListing`` the
    pull-request-scoped streams share (``remember``), so that when they come next in the sync they
    need no walk of their own.
    """

    name = "pull_requests"
    primary_key = ["repository_uuid", "id"]
    cursor_field = "updated_on"
    page_size = 50
    required_scope = "read:pullrequest:bitbucket"
    resource = "pullrequests"
    listings = ("pull_request_listing",)

    def __init__(self, pull_request_listing: Optional["PullRequestListing"] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pull_request_listing = pull_request_listing
        self._skipped: Set[str] = set()  # repositories skipped after a 403 or 404: nothing to hand over

    def on_partition_skipped(self, response: requests.Response, stream_slice: Mapping[str, Any]) -> None:
        self._skipped.add(stream_slice["repository"]["uuid"])
        super().on_partition_skipped(response, stream_slice)

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        """One repository's pull requests; once all are emitted, the listing gets their refs (the last
        read version of each: a walk read again after a shift emits some twice, the later one is
        newer), unless the repository was skipped (the listing then asks, and warns for its own streams)."""
        newest: Dict[Any, Mapping[str, Any]] = {}
        for record in super().read_records(sync_mode, cursor_field, stream_slice, stream_state):
            if self.pull_request_listing is not None and isinstance(record, Mapping):
                newest[record.get("id")] = pull_request_ref(record)
            yield record
        if self.pull_request_listing is not None and stream_slice and stream_slice["repository"]["uuid"] not in self._skipped:
            self.pull_request_listing.remember(stream_slice["repository"], stream_slice["since"], newest.values())

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {
            "state": list(self.config.pull_request_states),
            "q": f"updated_on>{stream_slice['since']}",
            "sort": "updated_on",
            "fields": "+values.participants,+values.reviewers",
        }
