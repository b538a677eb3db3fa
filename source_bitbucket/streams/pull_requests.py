"""pull_requests: ``GET /repositories/{workspace}/{repository}/pullrequests``."""

from __future__ import annotations

from typing import Any, Mapping

from source_bitbucket.streams.repository_scoped import RepositoryScopedStream


class PullRequests(RepositoryScopedStream):
    """Pull requests of every repository. Primary key (``repository_uuid``, ``id``), cursor ``updated_on``.

    ``pagelen`` 50 (the endpoint's maximum; 100 answers 400 "Invalid pagelen"). The configured
    states are sent as repeated ``state`` parameters (with none, the API returns only OPEN).
    The collection leaves out ``participants`` and ``reviewers`` (https://developer.atlassian.com/cloud/bitbucket/rest/intro/#partial-response:
    they come only from a pull request's own URL); ``fields=+values.participants,+values.reviewers``
    adds them without a request per pull request. The window is filtered on the server with
    ``q=updated_on>{since}`` and read in ascending ``sort=updated_on``. State is written once per
    repository, after a walk of its listing that saw no shift (see ``BitbucketStream``).
    """

    name = "pull_requests"
    primary_key = ["repository_uuid", "id"]
    cursor_field = "updated_on"
    page_size = 50
    required_scope = "read:pullrequest:bitbucket"
    resource = "pullrequests"

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {
            "state": list(self.config.pull_request_states),
            "q": f"updated_on>{stream_slice['since']}",
            "sort": "updated_on",
            "fields": "+values.participants,+values.reviewers",
        }
