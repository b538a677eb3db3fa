"""The sandbox's API routes: pure request -> :class:`Response` logic, no sockets.

Rules (from ``shared/docs/bitbucket-api-notes.md``): page-number pagination with ``page``/``size`` on
lists, iterator pagination with an opaque ``page`` token on commits, pagelen caps answered with
``400 Invalid pagelen``, BBQL ``q`` and ``sort`` on repositories and pull requests, OPEN-only default
for pull requests, include/exclude on commits, ``sort`` rejected on deployments, absolute ``next``
links that repeat every original query parameter, ``fields=`` partial responses (``fields.py``; pull
request collection pages leave out ``participants`` and ``reviewers`` unless added with ``+``).
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote, urlencode

from . import fields, shapes
from .bbql import MISSING, BBQLError, compile_query, lookup
from .util import fmt_us

PR_STATES = ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")
REPO_FIELDS = {"type", "full_name", "links", "name", "slug", "description", "scm", "website", "owner", "workspace",
               "is_private", "project", "fork_policy", "created_on", "updated_on", "size", "language",
               "has_issues", "has_wiki", "uuid", "mainbranch", "parent", "override_settings"}
PR_FIELDS = {"comment_count", "task_count", "type", "id", "title", "description", "state", "merge_commit",
             "close_source_branch", "closed_by", "author", "reason", "created_on", "updated_on", "destination",
             "source", "links", "summary", "participants", "reviewers", "draft"}
FAST = {
    "repo": {"updated_on": lambda r: fmt_us(r.updated_us), "created_on": lambda r: fmt_us(r.created_us),
             "slug": lambda r: r.slug, "name": lambda r: r.name, "uuid": lambda r: r.uuid},
    "pr": {"updated_on": lambda p: fmt_us(p.updated_us), "created_on": lambda p: fmt_us(p.created_us),
           "state": lambda p: p.state, "id": lambda p: p.id, "title": lambda p: p.title},
}
# What a collection leaves out of its values unless asked with fields=+values.x (the self URL includes them).
HIDDEN = {"pullrequests": (("values", "participants"), ("values", "reviewers"))}
NO_API = ("There is no API hosted at this URL.\n\nFor information about our API's, please refer to the "
          "documentation at: https://developer.atlassian.com/bitbucket/api/2/reference/")


class Response:
    """Status, body bytes, content type and extra headers of one answer."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json", headers=None):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers: Dict[str, str] = dict(headers or {})


class ApiError(Exception):
    """Raised by route code; becomes ``{"type": "error", "error": {"message": ..., "detail": ...}}``."""

    def __init__(self, status: int, message: str, detail: Any = None):
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


def json_response(status: int, obj: Any) -> Response:
    """Serialise ``obj`` as an ``application/json`` answer."""
    return Response(status, json.dumps(obj).encode())


def error_response(status: int, message: str, detail: Any = None) -> Response:
    """The standard Bitbucket error body."""
    err: Dict[str, Any] = {"message": message}
    if detail is not None:
        err["detail"] = detail
    return json_response(status, {"type": "error", "error": err})


def endpoint_kind(path: str) -> str:
    """Classify a request path for ``request_counts``: repositories, pullrequests, commits, ...."""
    parts = [unquote(p) for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "2.0":
        rest = parts[1:]
        if rest[0] == "repositories":
            if len(rest) in (2, 3):
                return "repositories"
            if len(rest) >= 4 and rest[3] in ("pullrequests", "commits", "deployments"):
                return rest[3]
        if rest[0] == "workspaces" and len(rest) == 3 and rest[2] == "members":
            return "members"
    return "other"


class Request:
    """One API request as the routes see it: raw path, ordered query pairs, origin for links."""

    def __init__(self, method: str, path: str, pairs: Sequence[Tuple[str, str]], origin: str):
        self.method, self.path, self.pairs, self.origin = method, path, list(pairs), origin

    def all(self, name: str) -> List[str]:
        """Every value of a (repeatable) parameter."""
        return [v for k, v in self.pairs if k == name]

    def get(self, name: str) -> Optional[str]:
        """The first value of a parameter, or None."""
        values = self.all(name)
        return values[0] if values else None

    def int_param(self, name: str, default: int, message: str) -> int:
        """An integer parameter; a non-integer answers 400 ``message``."""
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ApiError(400, message) from None

    def link(self, **replace: str) -> str:
        """Absolute URL of this request with some parameters replaced (or appended)."""
        pairs, done = [], set()
        for key, value in self.pairs:
            if key in replace:
                if key in done:
                    continue
                value, _ = replace[key], done.add(key)
            pairs.append((key, value))
        pairs += [(k, v) for k, v in replace.items() if k not in done]
        return f"{self.origin}{self.path}?{urlencode(pairs)}"


class Api:
    """Routes for one workspace; callers hold ``workspace.lock`` while calling :meth:`handle`."""

    def __init__(self, workspace):
        self.ws = workspace
        self._cache: "OrderedDict[tuple, list]" = OrderedDict()

    def handle(self, req: Request) -> Response:
        """Answer one authenticated API request."""
        try:
            return self._route(req)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.detail)

    # ------------------------------------------------------------ routing
    def _route(self, req: Request) -> Response:
        parts = [unquote(p) for p in req.path.split("/") if p]
        if not parts or parts[0] != "2.0":
            return Response(404, b"Not Found", "text/plain")
        p = parts[1:]
        if req.method not in ("GET", "POST") or (req.method == "POST" and "commits" not in p[3:4]):
            raise ApiError(405, f"Method {req.method} not allowed on this resource")
        if p == ["user"]:
            return _ok(req, shapes.user(self.ws.owner))
        if p == ["user", "workspaces"]:
            return self._paged(req, [self.ws], lambda w: {"type": "workspace_access", "administrator": True,
                                                          "workspace": shapes.workspace_ref(w)}, 10, 100)
        if len(p) >= 2 and p[0] in ("workspaces", "repositories"):
            self._workspace(p[1])
            if p[0] == "workspaces" and len(p) == 2:
                return _ok(req, shapes.workspace(self.ws))
            if p[0] == "workspaces" and p[2:] == ["members"]:
                return self._paged(req, self.ws.members, self.ws.membership_api, 10, 100)
            if p[0] == "repositories" and len(p) == 2:
                return self._repositories(req)
            if p[0] == "repositories":
                return self._repository_route(req, self._repository(p[2]), p[3:])
        raise ApiError(404, "Resource not found", NO_API)

    def _repository_route(self, req: Request, repo, rest: List[str]) -> Response:
        ws = self.ws
        if not rest:
            return _ok(req, ws.repository_api(repo))
        if rest == ["pullrequests"]:
            return self._pullrequests(req, repo)
        if rest[0] == "pullrequests" and len(rest) == 2:
            pr = next((x for x in repo.pull_requests if str(x.id) == rest[1]), None)
            if pr is None:
                raise ApiError(404, f"Pull request {rest[1]} not found")
            return _ok(req, ws.pull_request_api(repo, pr))
        if rest[0] == "commits":
            return self._commits(req, repo, "/".join(rest[1:]) or None)
        if rest == ["deployments"]:
            if req.get("sort") is not None:
                raise ApiError(400, "Invalid sort parameter: sorting is not supported for deployments")
            return self._paged(req, repo.deployments[::-1], lambda d: ws.deployment_api(repo, d), 10, 100)
        if rest[0] == "deployments" and len(rest) == 2:
            dep = next((d for d in repo.deployments if d.uuid == rest[1]), None)
            if dep is None:
                raise ApiError(404, f"Deployment {rest[1]} not found")
            return _ok(req, ws.deployment_api(repo, dep))
        if rest == ["refs", "branches"]:
            graph = repo.graph
            names = sorted(graph.branches)
            return self._paged(req, names, lambda n: {"name": n, "type": "branch",
                                                      "target": ws.commit_api(repo, graph.branches[n])}, 10, 100)
        raise ApiError(404, "Resource not found", NO_API)

    def _workspace(self, key: str) -> None:
        if key.lower() not in (self.ws.slug.lower(), self.ws.uuid.lower()):
            raise ApiError(404, f"No workspace with identifier '{key}'.")

    def _repository(self, key: str):
        repo = self.ws.repository(key)
        if repo is None:
            raise ApiError(404, f"Repository {self.ws.slug}/{key} not found")
        return repo

    # ------------------------------------------------------------ lists
    def _paged(self, req: Request, items: Sequence, render: Callable, default: int, maximum: int,
               hidden: Sequence[fields.Path] = ()) -> Response:
        pagelen = req.int_param("pagelen", default, "Invalid pagelen")
        if pagelen < 1 or pagelen > maximum:
            raise ApiError(400, "Invalid pagelen")
        page = req.int_param("page", 1, "Invalid page")
        if page < 1:
            raise ApiError(400, "Invalid page")
        start = (page - 1) * pagelen
        body: Dict[str, Any] = {"pagelen": pagelen, "values": [render(x) for x in items[start:start + pagelen]],
                                "page": page, "size": len(items)}
        if start + pagelen < len(items):
            body["next"] = req.link(page=str(page + 1))
        if page > 1:
            body["previous"] = req.link(page=str(page - 1))
        return _ok(req, body, hidden)

    def _select(self, req: Request, key: tuple, items: Sequence, render: Callable, fast: Dict, fields) -> List:
        """Apply ``q`` and ``sort`` (cached per workspace version)."""
        q, sort = req.get("q"), req.get("sort")
        cache_key = (self.ws.version,) + key + (q, sort)
        if cache_key in self._cache:
            self._cache.move_to_end(cache_key)
            return self._cache[cache_key]

        def getter(model):
            built: List[Any] = []

            def get(path: str):
                if path in fast:
                    return fast[path](model)
                if not built:
                    built.append(render(model))
                return lookup(built[0], path)

            return get

        out = list(items)
        if q:
            try:
                predicate = compile_query(q, fields)
            except BBQLError as exc:
                raise ApiError(400, str(exc)) from None
            out = [m for m in out if predicate(getter(m))]
        if sort:
            field = sort.lstrip("-")
            if field.split(".")[0] not in fields:
                raise ApiError(400, f"Invalid sort field: {field}")
            keyed = [(getter(m)(field), m) for m in out]
            keyed.sort(key=lambda kv: (kv[0] is not None and kv[0] is not MISSING, _sortable(kv[0])),
                       reverse=sort.startswith("-"))
            out = [m for _, m in keyed]
        self._cache[cache_key] = out
        while len(self._cache) > 64:
            self._cache.popitem(last=False)
        return out

    def _repositories(self, req: Request) -> Response:
        repos = sorted(self.ws.repositories, key=lambda r: (r.created_us, r.slug))
        selected = self._select(req, ("repositories",), repos, self.ws.repository_api, FAST["repo"], REPO_FIELDS)
        return self._paged(req, selected, self.ws.repository_api, 10, 100)

    def _pullrequests(self, req: Request, repo) -> Response:
        states = [s.upper() for s in req.all("state")] or ["OPEN"]
        bad = [s for s in states if s not in PR_STATES]
        if bad:
            raise ApiError(400, f"Invalid state: {bad[0]}", {"state": [f"must be one of {', '.join(PR_STATES)}"]})
        wanted = set(states)
        prs = [pr for pr in repo.pull_requests if pr.state in wanted]

        def render(pr):
            return self.ws.pull_request_api(repo, pr)

        selected = self._select(req, ("pullrequests", repo.uuid, tuple(sorted(wanted))), prs, render, FAST["pr"],
                                PR_FIELDS)
        return self._paged(req, selected, render, 10, 50, HIDDEN["pullrequests"])

    def _commits(self, req: Request, repo, revision: Optional[str]) -> Response:
        pagelen = req.int_param("pagelen", 30, "Invalid pagelen")
        if pagelen < 1 or pagelen > 100:
            raise ApiError(400, "Invalid pagelen")
        graph = repo.graph

        def resolve(refs: List[str]) -> List[int]:
            out = []
            for ref in refs:
                idx = graph.resolve(ref)
                if idx is None:
                    raise ApiError(404, "Commit not found", f"Commit '{ref}' does not exist in {repo.slug}")
                out.append(idx)
            return out

        includes = resolve(([revision] if revision else []) + req.all("include"))
        excludes = resolve(req.all("exclude"))
        if not includes and not revision:
            includes = graph.heads()
        token = req.get("page")
        listing_id, offset, order = None, 0, None
        if token:
            listing_id, offset = _decode_token(token)
            order = graph.cached(listing_id)
        if order is None:
            listing_id, order = graph.listing(includes, excludes)
        chunk = order[offset:offset + pagelen]
        body: Dict[str, Any] = {"values": [self.ws.commit_api(repo, idx) for idx in chunk], "pagelen": pagelen}
        if offset + pagelen < len(order):
            body["next"] = req.link(page=_encode_token(listing_id, offset + pagelen))
        return _ok(req, body)


def _ok(req: Request, body: Any, hidden: Sequence[fields.Path] = ()) -> Response:
    """A 200 answer of ``body`` shaped by the request's ``fields`` (and the resource's hidden fields)."""
    wanted = req.all("fields")
    return json_response(200, fields.apply(body, wanted, hidden) if wanted or hidden else body)


def _sortable(value: Any) -> Any:
    if value is None or value is MISSING:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _encode_token(listing_id: int, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{listing_id}:{offset}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> Tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        listing_id, offset = (int(x) for x in raw.split(":"))
        if offset < 0:
            raise ValueError
        return listing_id, offset
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Invalid page") from None
