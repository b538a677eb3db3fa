"""The sandbox's API routes: pure request -> :class:`Response` logic, no sockets.

Rules (from ``shared/docs/bitbucket-api-notes.md``): page-number pagination with ``page``/``size`` on
lists (one generic route over the ``resources.PAGED`` table: pagelen caps answered with
``400 Invalid pagelen``, BBQL ``q`` and ``sort`` where the entry allows them), iterator pagination
with an opaque ``page`` token and include/exclude on commits, absolute ``next`` links that repeat
every original query parameter, ``fields=`` partial responses (``fields.py``; an entry's hidden
fields are left out unless added with ``+``), and the single-object routes.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlencode

from . import fields, resources, reviews, shapes
from .bbql import MISSING, BBQLError, compile_query, lookup
from .protocol import NO_API, ApiError, Request, Response, api_segments, error_response, json_response
from .resources import Owner, Paged


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
        p = api_segments(req.path)
        if not p:
            return Response(404, b"Not Found", "text/plain")
        if req.method not in ("GET", "POST") or (req.method == "POST" and "commits" not in p[3:4]):
            raise ApiError(405, f"Method {req.method} not allowed on this resource")
        if p == ["user"]:
            return _ok(req, shapes.user(self.ws.owner))
        owner = Owner(self.ws)
        if len(p) >= 2 and p[0] in ("workspaces", "repositories"):
            self._workspace(p[1])
            if p[0] == "repositories" and len(p) >= 3:
                owner = Owner(self.ws, self._repository(p[2]))
        found = resources.match(p)
        if found:
            resource, captured = found
            if "pull_request" in captured:
                owner = replace(owner, pull_request=self._pull_request(owner.repo, captured["pull_request"]))
            if "pipeline" in captured:
                owner = replace(owner, pipeline=self._pipeline(owner.repo, captured["pipeline"]))
            return self._list(req, resource, owner)
        if p[0] == "workspaces" and len(p) == 2:
            return _ok(req, shapes.workspace(self.ws))
        if owner.repo is not None:
            return self._repository_object(req, owner.repo, p[3:])
        raise ApiError(404, "Resource not found", NO_API)

    def _repository_object(self, req: Request, repo, rest: List[str]) -> Response:
        """A repository, one of its pull requests or deployments, or its commits (not page-number lists)."""
        ws = self.ws
        if not rest:
            return _ok(req, ws.repository_api(repo))
        if rest[0] == "commits":
            return self._commits(req, repo, "/".join(rest[1:]) or None)
        if rest == ["pullrequests", "activity"]:
            return self._iterated(req, ("activity", repo.uuid), lambda: reviews.activity(ws, repo), lambda e: e, 10, 50)
        if rest[0] == "pullrequests" and len(rest) == 3 and rest[2] in ("commits", "diffstat"):
            pr = self._pull_request(repo, rest[1])
            if rest[2] == "diffstat":  # Bitbucket redirects to the repository diffstat of the revisions
                target = f"{req.origin}/2.0/repositories/{ws.slug}/{repo.slug}/diffstat/{reviews.revision_spec(pr)}"
                return Response(302, b"", "text/html", {"Location": target})
            if (repo.uuid, pr.id) in ws.deleted_fork_pull_requests:
                raise ApiError(404, "Repository not found", "The source repository of this pull request no longer exists")
            return self._iterated(req, ("pr-commits", repo.uuid, pr.id), lambda: reviews.pull_request_commits(repo, pr),
                                  lambda idx: ws.commit_api(repo, idx), 30, 100)
        if rest[0] == "pullrequests" and len(rest) == 2:
            return _ok(req, ws.pull_request_api(repo, self._pull_request(repo, rest[1])))
        if rest[0] == "deployments" and len(rest) == 2:
            dep = next((d for d in repo.deployments if d.uuid == rest[1]), None)
            if dep is None:
                raise ApiError(404, f"Deployment {rest[1]} not found")
            return _ok(req, ws.deployment_api(repo, dep))
        if rest[0] == "environments" and len(rest) == 2:
            env = next((e for e in repo.environment_models if e.uuid.lower() == rest[1].lower()), None)
            if env is None:
                raise ApiError(404, f"Environment {rest[1]} not found")
            return _ok(req, ws.environment_api(env))
        if rest[0] == "pipelines" and len(rest) in (2, 4) and rest[2:3] in ([], ["steps"]):
            return self._pipeline_object(req, repo, rest[1], rest[3] if len(rest) == 4 else None)
        raise ApiError(404, "Resource not found", NO_API)

    def _pipeline_object(self, req: Request, repo, uuid: str, step_uuid: Optional[str]) -> Response:
        """One pipeline, or one of its steps (trailing slash or not; ``fields=`` as on the lists)."""
        pipeline = self._pipeline(repo, uuid)
        if step_uuid is None:
            return _ok(req, self.ws.pipeline_api(repo, pipeline), ignore_fields=self.ws.ignore_fields)
        key = step_uuid.lower().strip("{}")
        step = next((s for s in pipeline.steps if s.uuid.lower().strip("{}") == key), None)
        if step is None:
            raise ApiError(404, "Not found", f"Step {step_uuid} not found in pipeline {pipeline.uuid}")
        return _ok(req, self.ws.step_api(repo, pipeline, step), ignore_fields=self.ws.ignore_fields)

    def _workspace(self, key: str) -> None:
        if key.lower() not in (self.ws.slug.lower(), self.ws.uuid.lower()):
            raise ApiError(404, f"No workspace with identifier '{key}'.")

    def _repository(self, key: str):
        repo = self.ws.repository(key)
        if repo is None:
            raise ApiError(404, f"Repository {self.ws.slug}/{key} not found")
        return repo

    @staticmethod
    def _pipeline(repo, key: str):
        resources.pipelines_on(repo)
        found = repo.pipeline(key)
        if found is None:
            raise ApiError(404, "Not found", f"Pipeline {key} not found")
        return found

    @staticmethod
    def _pull_request(repo, key: str):
        pr = next((x for x in repo.pull_requests if str(x.id) == key), None)
        if pr is None:
            raise ApiError(404, f"Pull request {key} not found")
        return pr

    # ------------------------------------------------------------ lists
    def _list(self, req: Request, resource: Paged, owner: Owner) -> Response:
        """One page of a ``resources.PAGED`` list: its items, narrowed and ordered by ``q``/``sort``
        where the entry allows them."""
        if resource.rejects_sort and req.get("sort") is not None:
            raise ApiError(400, f"Invalid sort parameter: sorting is not supported for {resource.name}")
        if resource.pipelines_module and not req.path.endswith("/"):
            raise ApiError(404, "There is no API hosted at this URL")

        def render(model):
            return resource.render(owner, model)

        if resource.query_fields is None:
            items = resource.items(owner, req)
        else:
            items = self._select(req, resource, owner, render)
        if resource.pipelines_module:
            return self._paged(req, items, render, resource.default_pagelen, resource.max_pagelen, resource.hidden,
                               resource.empty_pagelen, _pipelines_link if self.ws.pipelines_next_link else None,
                               self.ws.ignore_fields)
        return self._paged(req, items, render, resource.default_pagelen, resource.max_pagelen, resource.hidden,
                           resource.empty_pagelen)

    def _paged(self, req: Request, items: Sequence, render: Callable, default: int, maximum: int,
               hidden: Sequence[fields.Path] = (), empty_pagelen: Optional[int] = None,
               link: Optional[Callable[[Request, int, int], str]] = Request.link_to_page,
               ignore_fields: bool = False) -> Response:
        """One page of ``items``; ``link(req, page, pagelen)`` builds ``next``/``previous`` (None: no ``next``)."""
        pagelen = req.int_param("pagelen", default, "Invalid pagelen")
        if pagelen < 1 or pagelen > maximum:
            raise ApiError(400, "Invalid pagelen")
        page = req.int_param("page", 1, "Invalid page")
        if page < 1:
            raise ApiError(400, "Invalid page")
        if not items and empty_pagelen is not None:
            return _ok(req, {"page": 1, "values": [], "size": 0, "pagelen": empty_pagelen}, hidden, ignore_fields)
        start = (page - 1) * pagelen
        body: Dict[str, Any] = {"pagelen": pagelen, "values": [render(x) for x in items[start:start + pagelen]],
                                "page": page, "size": len(items)}
        if start + pagelen < len(items) and link is not None:
            body["next"] = link(req, page + 1, pagelen)
        if page > 1:
            body["previous"] = (link or _pipelines_link)(req, page - 1, pagelen)
        return _ok(req, body, hidden, ignore_fields)

    def _select(self, req: Request, resource: Paged, owner: Owner, render: Callable) -> List:
        """The entry's items with ``q`` and ``sort`` applied (cached per workspace version and per
        query parameters other than ``page``, ``pagelen`` and ``fields``)."""
        q, sort = req.get("q"), req.get("sort")
        params = tuple((k, v) for k, v in req.pairs if k not in ("page", "pagelen", "fields"))
        cache_key = (self.ws.version, resource.path, owner.key, params)
        if cache_key in self._cache:
            self._cache.move_to_end(cache_key)
            return self._cache[cache_key]
        fast, query_fields = resource.fast, resource.query_fields

        def getter(model):
            built: List[Any] = []

            def get(path: str):
                if path in fast:
                    return fast[path](model)
                if not built:
                    built.append(render(model))
                return lookup(built[0], path)

            return get

        out = list(resource.items(owner, req))
        if q:
            try:
                predicate = compile_query(q, query_fields)
            except BBQLError as exc:
                raise ApiError(400, str(exc)) from None
            out = [m for m in out if predicate(getter(m))]
        if sort:
            field = sort.lstrip("-")
            if field.split(".")[0] not in query_fields:
                raise ApiError(400, f"Invalid sort field: {field}")
            keyed = [(getter(m)(field), m) for m in out]
            keyed.sort(key=lambda kv: (kv[0] is not None and kv[0] is not MISSING, _sortable(kv[0])),
                       reverse=sort.startswith("-"))
            out = [m for _, m in keyed]
        self._cache[cache_key] = out
        while len(self._cache) > 64:
            self._cache.popitem(last=False)
        return out

    def _iterated(self, req: Request, key: tuple, items: Callable[[], Sequence], render: Callable, default: int,
                  maximum: int) -> Response:
        """One page of an iterator-paged list: ``next`` carries an opaque ``page`` token (an offset
        into the list as it is when that page is read: items added at the front repeat, none are
        skipped); no ``page``, ``size`` or ``previous``. ``items()`` is cached per workspace version."""
        pagelen = req.int_param("pagelen", default, "Invalid pagelen")
        if pagelen < 1 or pagelen > maximum:
            raise ApiError(400, "Invalid pagelen")
        cache_key = (self.ws.version, key)
        if cache_key not in self._cache:
            self._cache[cache_key] = list(items())
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        listed = self._cache[cache_key]
        token = req.get("page")
        offset = _decode_token(token)[1] if token else 0
        body: Dict[str, Any] = {"values": [render(x) for x in listed[offset:offset + pagelen]], "pagelen": pagelen}
        if offset + pagelen < len(listed):
            body["next"] = req.link(page=_encode_token(0, offset + pagelen))
        return _ok(req, body)

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


def _ok(req: Request, body: Any, hidden: Sequence[fields.Path] = (), ignore_fields: bool = False) -> Response:
    """A 200 answer of ``body`` shaped by the request's ``fields`` (and the resource's hidden fields);
    ``ignore_fields``: ``body`` whole, whatever ``fields`` asks."""
    wanted = [] if ignore_fields else req.all("fields")
    return json_response(200, fields.apply(body, wanted, hidden) if wanted or hidden else body)


def _pipelines_link(req: Request, page: int, pagelen: int) -> str:
    """The pipelines module's ``next``/``previous``: the path with only ``page`` and ``pagelen`` (``sort``,
    ``fields`` and the rest are dropped, as on Bitbucket)."""
    return f"{req.origin}{req.path}?{urlencode([('page', page), ('pagelen', pagelen)])}"


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
