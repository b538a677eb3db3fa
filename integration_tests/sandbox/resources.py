"""The sandbox's page-number lists, one :class:`Paged` entry per resource, and the request kinds.

``PAGED`` is the one table the API's generic list route serves (``api.Api``) and ``endpoint_kind``
classifies request paths with (``SandboxServer.request_counts``). A new list is one more entry:
its path template (``WORKSPACE``, ``REPOSITORIES``, ``REPOSITORY`` or ``PULL_REQUEST`` plus the
resource's own segments), what it lists and how each item renders, its ``pagelen`` default and cap,
and what ``q``/``sort`` may use. Rules from ``shared/docs/bitbucket-api-notes.md``: caps 100 (pull
requests 50), BBQL on repositories and pull requests, OPEN-only default for pull requests, ``sort``
rejected on deployments, participants and reviewers left out of pull request pages unless added
with ``fields=+values.x``; ``shared/docs/bitbucket-api-more-endpoints.md`` 2.3-2.5 for the pipelines
module (``pipelines_module`` entries: pipelines and their steps) and environments. The commit listing (iterator pagination) and the single-object routes
are ``api.py``'s own; a single object counts under its collection's kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from . import fields, reviews, shapes
from .protocol import ApiError, Request, api_segments
from .util import fmt_us

WORKSPACE = "workspaces/{workspace}"
REPOSITORIES = "repositories/{workspace}"
REPOSITORY = REPOSITORIES + "/{repository}"
PULL_REQUEST = REPOSITORY + "/pullrequests/{pull_request}"
COMMITS = REPOSITORY + "/commits"  # served by api.py (iterator pagination); counts as "commits", with all below it
# Served by api.py too (iterator pagination, or a redirect), each counted under its kind.
ROUTES: Tuple[Tuple[str, str], ...] = (
    ("pull_request_activity", REPOSITORY + "/pullrequests/activity"),
    ("pull_request_commits", PULL_REQUEST + "/commits"),
    ("pull_request_diffstat", PULL_REQUEST + "/diffstat"),
)
OTHER = "other"

PR_STATES = ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")
REPO_FIELDS = frozenset({"type", "full_name", "links", "name", "slug", "description", "scm", "website", "owner",
                         "workspace", "is_private", "project", "fork_policy", "created_on", "updated_on", "size",
                         "language", "has_issues", "has_wiki", "uuid", "mainbranch", "parent", "override_settings"})
PR_FIELDS = frozenset({"comment_count", "task_count", "type", "id", "title", "description", "state", "merge_commit",
                       "close_source_branch", "closed_by", "author", "reason", "created_on", "updated_on",
                       "destination", "source", "links", "summary", "participants", "reviewers", "draft"})
# BBQL fields read straight from the models (no rendering) when a query or sort uses them.
FAST_REPO = {"updated_on": lambda r: fmt_us(r.updated_us), "created_on": lambda r: fmt_us(r.created_us),
             "slug": lambda r: r.slug, "name": lambda r: r.name, "uuid": lambda r: r.uuid}
FAST_PR = {"updated_on": lambda p: fmt_us(p.updated_us), "created_on": lambda p: fmt_us(p.created_us),
           "state": lambda p: p.state, "id": lambda p: p.id, "title": lambda p: p.title}


@dataclass(frozen=True)
class Owner:
    """What a request path names above its resource: the workspace (``data.Workspace``), and the
    repository and pull request (``models``) when the path has ``{repository}``/``{pull_request}``."""

    ws: Any
    repo: Any = None
    pull_request: Any = None
    pipeline: Any = None

    @property
    def key(self) -> Tuple[Optional[str], Optional[int]]:
        """(repository uuid, pull request id), None where the path names none."""
        return (self.repo.uuid if self.repo is not None else None,
                self.pull_request.id if self.pull_request is not None else None)


@dataclass(frozen=True)
class Paged:
    """One page-number list.

    * ``kind``: its name in ``request_counts`` (``OTHER`` for lists no stream reads).
    * ``path``: the template below ``/2.0/``, e.g. ``REPOSITORY + "/deployments"``.
    * ``items(owner, request) -> sequence of models``, in listing order (may raise ``ApiError``
      for a bad parameter, e.g. a pull request ``state``).
    * ``render(owner, model) -> dict``: one value, in the API's shape.
    * ``default_pagelen`` / ``max_pagelen``: a ``pagelen`` above the cap answers 400 Invalid pagelen.
    * ``hidden``: ``fields.Path`` s left out of the page unless asked with ``fields=+values.x``.
    * ``query_fields``: the top-level fields ``q`` and ``sort`` may use (None: both ignored);
      ``fast``: ``{BBQL field: model -> value}`` read without rendering.
    * ``rejects_sort``: a ``sort`` parameter answers 400.
    * ``empty_pagelen``: an empty list answers ``{"page": 1, "values": [], "size": 0, "pagelen": <this>}``
      (0 on environments and the pipelines module) instead of the requested pagelen.
    * ``pipelines_module``: served like Bitbucket's pipelines module: the list path must end with ``/``
      (else 404 There is no API hosted at this URL), ``q`` is ignored (``items`` handles ``sort``), the
      ``next``/``previous`` links keep only ``page`` and ``pagelen`` (no ``next`` at all when
      ``workspace.pipelines_next_link`` is False) and ``fields=`` is ignored when ``workspace.ignore_fields``.
    """

    kind: str
    path: str
    items: Callable[[Owner, Request], Sequence[Any]]
    render: Callable[[Owner, Any], Dict[str, Any]]
    default_pagelen: int = 10
    max_pagelen: int = 100
    hidden: Tuple[fields.Path, ...] = ()
    query_fields: Optional[FrozenSet[str]] = None
    fast: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    rejects_sort: bool = False
    empty_pagelen: Optional[int] = None
    pipelines_module: bool = False

    @property
    def segments(self) -> List[str]:
        """The path template's segments."""
        return self.path.split("/")

    @property
    def name(self) -> str:
        """The last segment of the path (``deployments``), for messages."""
        return self.segments[-1]


def _pull_requests(owner: Owner, req: Request) -> List[Any]:
    """The repository's pull requests in the requested ``state`` s (repeatable; OPEN when none)."""
    states = [s.upper() for s in req.all("state")] or ["OPEN"]
    bad = [s for s in states if s not in PR_STATES]
    if bad:
        raise ApiError(400, f"Invalid state: {bad[0]}", {"state": [f"must be one of {', '.join(PR_STATES)}"]})
    wanted = set(states)
    return [pr for pr in owner.repo.pull_requests if pr.state in wanted]


def _diffstat(owner: Owner, req: Request) -> List[Dict[str, Any]]:
    """The files of ``…/diffstat/{spec}``; a pull request's ``Workspace.diffstat_errors`` answer 400 or 555."""
    spec = (api_segments(req.path) or [""])[-1]
    for pr in owner.repo.pull_requests:
        status = owner.ws.diffstat_errors.get((owner.repo.uuid, pr.id))
        if status and reviews.revision_spec(pr) == spec:
            if status == 400:
                raise ApiError(400, "No common ancestor", f"There is no common ancestor between {spec.replace('..', ' and ')}")
            raise ApiError(555, "Timeout", "Generating the diffstat timed out")
    return reviews.diffstat(owner.ws, owner.repo, spec)


def _workspace_access(owner: Owner, workspace: Any) -> Dict[str, Any]:
    return {"type": "workspace_access", "administrator": True, "workspace": shapes.workspace_ref(workspace)}


def pipelines_on(repo) -> None:
    """404 for a repository with Pipelines turned off (its pipelines, one pipeline, its steps)."""
    if not repo.pipelines_enabled:
        raise ApiError(404, "Not found", f"Pipelines are not enabled for the repository {repo.slug}")


def _pipelines(owner: Owner, req: Request) -> Sequence[Any]:
    """The repository's pipelines, oldest first; ``sort`` may only be ``created_on`` / ``-created_on``."""
    pipelines_on(owner.repo)
    sort = req.get("sort")
    if not sort:
        return owner.repo.pipelines
    if sort.lstrip("-") != "created_on":
        raise ApiError(400, f"Invalid sort attribute provided '{sort.lstrip('-')}'")
    return owner.repo.pipelines[::-1] if sort.startswith("-") else owner.repo.pipelines


PAGED: List[Paged] = [
    Paged("repositories", REPOSITORIES, lambda o, _: sorted(o.ws.repositories, key=lambda r: (r.created_us, r.slug)),
          lambda o, repo: o.ws.repository_api(repo), query_fields=REPO_FIELDS, fast=FAST_REPO),
    Paged("pullrequests", REPOSITORY + "/pullrequests", _pull_requests, lambda o, pr: o.ws.pull_request_api(o.repo, pr),
          max_pagelen=50, hidden=(("values", "participants"), ("values", "reviewers")), query_fields=PR_FIELDS,
          fast=FAST_PR),
    Paged("deployments", REPOSITORY + "/deployments", lambda o, _: o.repo.deployments[::-1],
          lambda o, dep: o.ws.deployment_api(o.repo, dep), rejects_sort=True),
    Paged("members", WORKSPACE + "/members", lambda o, _: o.ws.members, lambda o, member: o.ws.membership_api(member)),
    Paged("environments", REPOSITORY + "/environments", lambda o, _: o.repo.environment_models,
          lambda o, env: o.ws.environment_api(env), empty_pagelen=0),
    Paged("pipelines", REPOSITORY + "/pipelines", _pipelines, lambda o, p: o.ws.pipeline_api(o.repo, p),
          empty_pagelen=0, pipelines_module=True),
    Paged("pipeline_steps", REPOSITORY + "/pipelines/{pipeline}/steps", lambda o, _: o.pipeline.steps,
          lambda o, step: o.ws.step_api(o.repo, o.pipeline, step), empty_pagelen=0, pipelines_module=True),
    Paged("branches", REPOSITORY + "/refs/branches", lambda o, _: sorted(o.repo.graph.branches),
          lambda o, name: reviews.branch_api(o.ws, o.repo, name), query_fields=frozenset({"name", "target"}),
          fast={"name": lambda name: name}),
    Paged("tags", REPOSITORY + "/refs/tags", lambda o, _: sorted(o.repo.tags, key=lambda t: t.name),
          lambda o, tag: reviews.tag_api(o.ws, o.repo, tag), query_fields=frozenset({"name", "target", "date"}),
          fast={"name": lambda tag: tag.name}),
    Paged("pull_request_comments", PULL_REQUEST + "/comments", lambda o, _: reviews.published(o.pull_request),
          lambda o, c: reviews.comment_api(o.ws, o.repo, o.pull_request, c),
          query_fields=frozenset({"id", "created_on", "updated_on", "deleted"}),
          fast={"updated_on": lambda c: fmt_us(c.updated_us), "created_on": lambda c: fmt_us(c.created_us),
                "id": lambda c: c.id}),
    Paged("pull_request_diffstat", REPOSITORY + "/diffstat/{spec}", _diffstat, lambda o, f: f,
          default_pagelen=500, max_pagelen=500),
    Paged("projects", WORKSPACE + "/projects", lambda o, _: sorted(o.ws.projects, key=lambda p: (p.created_us, p.key)),
          lambda o, p: reviews.project_api(o.ws, p), query_fields=frozenset({"key", "name", "uuid", "created_on", "updated_on"}),
          fast={"updated_on": lambda p: fmt_us(p.updated_us), "created_on": lambda p: fmt_us(p.created_us),
                "key": lambda p: p.key}),
    Paged(OTHER, "user/workspaces", lambda o, _: [o.ws], _workspace_access),
]


def _captures(template: Sequence[str], parts: Sequence[str]) -> Optional[Dict[str, str]]:
    """``{placeholder: segment}`` when ``parts`` fits ``template`` segment for segment, else None."""
    if len(template) != len(parts):
        return None
    captured = {}
    for want, got in zip(template, parts):
        if want.startswith("{") and want.endswith("}"):
            captured[want[1:-1]] = got
        elif want != got:
            return None
    return captured


def match(parts: Sequence[str]) -> Optional[Tuple[Paged, Dict[str, str]]]:
    """The ``PAGED`` entry serving the path segments ``parts`` (after ``2.0``) and the placeholders'
    values (``workspace``, ``repository``, ``pull_request``, ``pipeline``), or None."""
    for resource in PAGED:
        captured = _captures(resource.segments, parts)
        if captured is not None:
            return resource, captured
    return None


def route(parts: Sequence[str]) -> Optional[str]:
    """The kind of the ``ROUTES`` entry the path segments ``parts`` name, or None."""
    return next((kind for kind, template in ROUTES if _captures(template.split("/"), parts) is not None), None)


def kinds() -> Tuple[str, ...]:
    """Every kind ``endpoint_kind`` answers: the table's, ``commits``, the routes', then ``other``."""
    return tuple(dict.fromkeys([r.kind for r in PAGED if r.kind != OTHER] + ["commits"] + [k for k, _ in ROUTES] + [OTHER]))


def endpoint_kind(path: str) -> str:
    """Classify a request path for ``request_counts``: the kind of the ``PAGED`` list it is (or one
    object of: the list's path plus one segment; the longest such path wins), ``commits`` for the
    commit listings, else ``other``."""
    parts = api_segments(path)
    if not parts:
        return OTHER
    if route(parts):
        return route(parts)
    commits = COMMITS.split("/")
    if len(parts) >= len(commits) and _captures(commits, parts[:len(commits)]) is not None:
        return "commits"
    best: Optional[Paged] = None
    for resource in PAGED:
        size = len(resource.segments)
        if size <= len(parts) <= size + 1 and _captures(resource.segments, parts[:size]) is not None:
            if best is None or size > len(best.segments):
                best = resource
    return best.kind if best else OTHER
