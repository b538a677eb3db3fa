"""pull_request_commits: ``GET /repositories/{workspace}/{repository}/pullrequests/{id}/commits``."""

from __future__ import annotations

from source_bitbucket.streams.pull_request_scoped import PullRequestScopedStream


class PullRequestCommits(PullRequestScopedStream):
    """Commits of every pull request updated since the last sync: primary key (``repository_uuid``,
    ``pull_request_id``, ``hash``), cursor ``pull_request_updated_on``, ``pagelen`` 100, iterator
    pagination (``next`` followed verbatim).

    The list is empty once the source branch is deleted (a merged pull request that closed it) and
    answers 404 when the source was a fork that no longer exists (skipped with one warning): the
    commits are read while they exist, and an empty answer deletes nothing (append + dedup). After a
    squash merge these commits are reachable from no branch: this stream is their only record.
    Source: https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/#api-repositories-workspace-repo-slug-pullrequests-pull-request-id-commits-get
    and ``shared/docs/bitbucket-api-more-endpoints.md`` 2.9.
    """

    name = "pull_request_commits"
    primary_key = ["repository_uuid", "pull_request_id", "hash"]
    page_size = 100
    required_scope = "read:pullrequest:bitbucket"
    resource = "commits"
    detect_shifts = False  # iterator pagination over a snapshot
