"""pull_request_diffstat: ``GET /repositories/{workspace}/{repository}/pullrequests/{id}/diffstat``."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, MutableMapping, Optional

import requests

from source_bitbucket.errors import error_detail
from source_bitbucket.streams.pull_request_scoped import PullRequestScopedStream

NO_COMMON_ANCESTOR = "no common ancestor"
DIFF_TIMED_OUT = 555


class PullRequestDiffstat(PullRequestScopedStream):
    """Files changed by every pull request updated since the last sync, one row per file:
    ``status`` (added, removed, modified, renamed), ``lines_added``, ``lines_removed``, ``old`` and
    ``new`` (``{path, escaped_path, type}``; ``old`` is null for an added file, ``new`` for a
    removed one), plus ``path`` lifted to the top level (``new.path``, else ``old.path``). Primary
    key (``repository_uuid``, ``pull_request_id``, ``path``), cursor ``pull_request_updated_on``,
    ``pagelen`` 500 (the endpoint's default).

    Bitbucket answers 302 to the repository diffstat of the pull request's revisions
    (``…/diffstat/{source}..{destination}``); requests follows it with the same credentials on the
    same host only (it drops ``Authorization`` on another host), and an answer from another host
    than the API fails the stream (``BitbucketErrorHandler``). A 400 "No
    common ancestor" (the branches share no history) or a 555 (generating the diff timed out) skips
    that pull request with one warning, without retries. No per-commit diffstat is offered: one
    request per commit would spend the rate limit.
    Source: https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/#api-repositories-workspace-repo-slug-pullrequests-pull-request-id-diffstat-get
    and ``shared/docs/bitbucket-api-more-endpoints.md`` 2.11.
    """

    name = "pull_request_diffstat"
    primary_key = ["repository_uuid", "pull_request_id", "path"]
    page_size = 500
    required_scope = "read:pullrequest:bitbucket"
    resource = "diffstat"
    skip_statuses = frozenset({403, 404, DIFF_TIMED_OUT})

    def is_skipped(self, response: requests.Response) -> bool:
        """Also a 400 "No common ancestor" (a diff that cannot be computed); any other 400 fails."""
        if response.status_code == 400:
            return NO_COMMON_ANCESTOR in error_detail(response).lower()
        return super().is_skipped(response)

    def on_partition_skipped(self, response: requests.Response, stream_slice: Mapping[str, Any]) -> None:
        if response.status_code in (400, DIFF_TIMED_OUT):
            reason = "the branches share no history" if response.status_code == 400 else "Bitbucket timed out generating the diff"
            self.logger.warning(
                f"Skipping {self.partition_name(stream_slice)} for stream {self.name}: HTTP {response.status_code} "
                f"({error_detail(response)}); {reason}, so it has no diffstat."
            )
            return
        super().on_partition_skipped(response, stream_slice)

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        record["path"] = _path(record.get("new")) or _path(record.get("old"))
        yield from super().transform(record, stream_slice)


def _path(file: Any) -> Optional[str]:
    return file.get("path") if isinstance(file, Mapping) and isinstance(file.get("path"), str) else None
