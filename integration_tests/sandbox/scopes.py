"""Token scopes: which scope each sandbox endpoint requires, and Bitbucket's missing-scope answer.

From https://developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication and each endpoint's
scopes in the API reference (https://developer.atlassian.com/cloud/bitbucket/rest/): repositories
(listing, one repository, commits, branches) need ``read:repository:bitbucket``; pull requests ``read:pullrequest:bitbucket``; deployments,
environments and pipelines ``read:pipeline:bitbucket``; the workspace and its members
``read:workspace:bitbucket``; the workspace's projects ``read:project:bitbucket``; ``/user`` ``read:user:bitbucket``. A request without its scope answers 403
``{"type": "error", "error": {"message": MISSING_SCOPE, "detail": {"granted": [...], "required": [scope]}}}``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence
from urllib.parse import unquote

from .protocol import Response, error_response

REPOSITORY, PULLREQUEST = "read:repository:bitbucket", "read:pullrequest:bitbucket"
PIPELINE, WORKSPACE, USER = "read:pipeline:bitbucket", "read:workspace:bitbucket", "read:user:bitbucket"
PROJECT = "read:project:bitbucket"
ALL_SCOPES = (REPOSITORY, PULLREQUEST, PIPELINE, WORKSPACE, PROJECT, USER)
MISSING_SCOPE = "Your credentials lack one or more required privilege scopes."
PIPELINE_RESOURCES = ("deployments", "environments", "pipelines", "pipelines_config", "deployments_config")


def required_scope(path: str) -> Optional[str]:
    """The scope an API request path needs (None for paths outside ``/2.0/``)."""
    parts = [unquote(p) for p in path.split("/") if p]
    if len(parts) < 2 or parts[0] != "2.0":
        return None
    rest = parts[1:]
    if rest[0] == "user":
        return USER if len(rest) == 1 else WORKSPACE
    if rest[0] == "workspaces":
        return PROJECT if rest[2:3] == ["projects"] else WORKSPACE
    if rest[0] == "repositories" and len(rest) >= 4:
        if rest[3] == "pullrequests":
            return PULLREQUEST
        if rest[3] in PIPELINE_RESOURCES:
            return PIPELINE
    return REPOSITORY if rest[0] == "repositories" else None


def granted(scopes: Optional[Sequence[str]]) -> List[str]:
    """The scopes a token holds: ``None`` means all of ``ALL_SCOPES``."""
    return list(ALL_SCOPES if scopes is None else scopes)


def missing_scope_response(required: str, held: Sequence[str]) -> Response:
    """Bitbucket's 403 for a token that lacks ``required``."""
    return error_response(403, MISSING_SCOPE, {"granted": list(held), "required": [required]})


def check(path: str, scopes: Optional[Sequence[str]]) -> Optional[Response]:
    """The 403 answer when a token with ``scopes`` may not call ``path``, else None."""
    needed = required_scope(path)
    if needed is None or scopes is None or needed in scopes:
        return None
    return missing_scope_response(needed, granted(scopes))
