"""workspace_users: ``GET /workspaces/{workspace}/members``."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, MutableMapping
from urllib.parse import quote

import requests

from source_bitbucket.config import ACCESS_TOKEN
from source_bitbucket.errors import error_detail
from source_bitbucket.streams.base import BitbucketStream


class WorkspaceUsers(BitbucketStream):
    """Members of the workspace (``workspace_membership`` objects). Full refresh only, ``pagelen`` 100.

    Records gain a top-level ``user_uuid`` (copied from ``user.uuid``), the primary key. With an access
    token, a 403 skips the stream with one warning: only workspace access tokens (scope ``account``) can
    list members, repository and project access tokens cannot. With other credentials a 403 fails it.
    """

    name = "workspace_users"
    primary_key = "user_uuid"
    page_size = 100
    required_scope = "read:workspace:bitbucket"
    workspace_level = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cursor = None  # read every page in one call, no resumable-full-refresh cursor

    @property
    def is_resumable(self) -> bool:
        """Not resumable: a full refresh always reads every member (no per-page state to replay)."""
        return False

    def first_page_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"workspaces/{quote(self.config.workspace, safe='')}/members"

    def is_skipped(self, response: requests.Response) -> bool:
        return response.status_code == 403 and self.config.credentials.auth_type == ACCESS_TOKEN

    def parse_response(self, response: requests.Response, **kwargs: Any) -> Iterable[Mapping[str, Any]]:
        if self.is_skipped(response):
            self.logger.warning(
                f"Skipping stream {self.name}: Bitbucket refused this access token the members of workspace "
                f"{self.config.workspace} (HTTP 403: {error_detail(response)}). Only a workspace access token with "
                "the scope 'account' can list them (a repository or project access token cannot); the other streams go on."
            )
            return
        yield from super().parse_response(response, **kwargs)

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        user = record.get("user")
        record["user_uuid"] = user.get("uuid") if isinstance(user, Mapping) else None
        if record["user_uuid"]:
            yield record
        else:
            self.logger.warning("workspace_users: a membership without user.uuid was skipped.")
