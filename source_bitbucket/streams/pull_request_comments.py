"""pull_request_comments: ``GET /repositories/{workspace}/{repository}/pullrequests/{id}/comments``."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, MutableMapping

from source_bitbucket.streams.pull_request_scoped import PullRequestScopedStream


class PullRequestComments(PullRequestScopedStream):
    """Comments of every pull request updated since the last sync that has comments
    (``comment_count`` > 0 in the listing): one walk per such pull request, never one per pull
    request of the repository. Primary key (``repository_uuid``, ``pull_request_id``, ``id``), cursor
    ``pull_request_updated_on`` (see ``PullRequestScopedStream``; the comment's own ``updated_on`` is
    kept), ``pagelen`` 100, oldest first.

    Posting, editing or deleting a comment moves its pull request's ``updated_on``, so the changed
    comments are among those read. Kept as they come: soft-deleted comments (``deleted: true``),
    inline positions (``inline{from, to, path}``; ``from``/``to`` null for file-level comments),
    replies (``parent.id``) and resolutions (``resolution``). Dropped: ``pending: true`` comments,
    the token owner's unpublished drafts (no server filter exists).
    Source: https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/#api-repositories-workspace-repo-slug-pullrequests-pull-request-id-comments-get
    and ``shared/docs/bitbucket-api-more-endpoints.md`` 2.7.
    """

    name = "pull_request_comments"
    primary_key = ["repository_uuid", "pull_request_id", "id"]
    page_size = 100
    required_scope = "read:pullrequest:bitbucket"
    resource = "comments"

    def wants(self, pull_request: Mapping[str, Any]) -> bool:
        """Only pull requests with comments (``comment_count`` missing or not a number: read anyway)."""
        count = pull_request.get("comment_count")
        return not isinstance(count, int) or count > 0

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        if record.get("pending") is True:
            return  # an unpublished draft of the token's own account
        yield from super().transform(record, stream_slice)
