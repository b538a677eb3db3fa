"""Code review in the sandbox: pull request comments, the activity feed, pull request commits and
diffstat, tags, and the projects' own fields.

Drawn from their own random streams (``"{seed}-reviews"`` at build time, ``"{seed}-reviews-mutations"``
for the mutations), so adding them left every other generated value as it was. Rules from
``shared/docs/bitbucket-api-more-endpoints.md`` 2.6-2.11 and the recorded payloads
(``pullrequest_comments__*``, ``pullrequest_activity__faros``, ``tags__*``, ``projects__nango``,
``diffstat__faros``):

* comments: ``comment_count`` of them per pull request are published and not deleted; some pull
  requests also list a soft-deleted comment (``deleted: true``, still listed) and an unpublished
  draft of the token's own user (``pending: true``); replies (``parent``), inline comments
  (``inline{from, to, path}``) and resolved threads (``resolution``); dates within the pull
  request's ``created_on`` .. ``updated_on``.
* activity (``…/pullrequests/activity``): derived from the pull requests, newest first: an
  ``update`` when a pull request was opened and when it was closed, an ``approval`` or a
  ``changes_requested`` per reviewer who acted, a ``comment`` per published comment.
* pull request commits: the source branch's commits not on the destination at creation, oldest
  last; empty once the source branch is gone (the documented trap), 404 for a pull request from a
  deleted fork (``Workspace.deleted_fork_pull_requests``).
* diffstat: a file list drawn from the revision spec (stable for a pull request until it changes);
  ``Workspace.diffstat_errors`` makes one pull request answer 400 "No common ancestor" and one 555.
* tags: annotated (``date``, ``message``, ``tagger``) or lightweight (all three null) on commits of
  the main branch.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Tuple

from . import shapes
from .util import DAY, HOUR, SECOND, fmt_s, fmt_us

FILES = ["src/app.py", "src/client.py", "src/config.py", "src/models.py", "src/retry.py", "tests/test_app.py",
         "tests/test_client.py", "README.md", "docs/usage.md", "package.json", "Dockerfile", "migrations/0042.sql",
         "web/index.ts", "web/login.tsx", "infra/main.tf", "CHANGELOG.md"]
WORDS = ["LGTM", "Could we add a test for this?", "Nit: naming", "Why not reuse the existing helper?",
         "Fixed in the latest commit", "This breaks the retry path", "+1", "Please rebase on main",
         "Does this handle an empty list?", "Done"]
COMMENT_IDS = 400_000_000


class Comment:
    """A pull request comment: ``inline`` is ``(path, from, to)`` or None, ``parent`` a comment id,
    ``resolution`` ``(account, created_us)`` or None."""

    def __init__(self, **fields):
        self.id = 0
        self.user = None
        self.created_us = self.updated_us = 0
        self.raw = ""
        self.inline: Optional[Tuple[str, Optional[int], Optional[int]]] = None
        self.parent: Optional[int] = None
        self.deleted = self.pending = False
        self.resolution: Optional[Tuple[Any, int]] = None
        self.__dict__.update(fields)


class Tag:
    """A tag on commit number ``target``; a lightweight tag has ``date_us``, ``message`` and ``tagger`` None."""

    def __init__(self, name: str, target: int, date_us: Optional[int] = None, message: Optional[str] = None,
                 tagger: Optional[Tuple[str, Any]] = None):
        self.name, self.target, self.date_us, self.message, self.tagger = name, target, date_us, message, tagger


# ------------------------------------------------------------------ generation
def add_reviews(ws, seed: int) -> None:
    """Give a freshly built workspace its comments, tags, projects' fields and the diffstat traps."""
    rng = random.Random(f"{seed}-reviews")
    ws.reviews_rng = random.Random(f"{seed}-reviews-mutations")
    users = [m.account for m in ws.members if m.account.type == "user"]
    for project in ws.projects:
        project.created_us = ws.created_us + rng.randrange(DAY, 300 * DAY)
        project.updated_us = project.created_us + rng.randrange(SECOND, 200 * DAY)
        project.description = rng.choice((None, "", f"Everything {project.name}."))
        project.is_private = rng.random() < 0.8
    for repo in ws.repositories:
        for pr in repo.pull_requests:
            _comments(rng, ws, pr, users)
        _tags(rng, ws, repo)
    with_prs = [(r, pr) for r in ws.repositories for pr in r.pull_requests if pr.state == "OPEN"]
    if len(with_prs) >= 3:
        picked = rng.sample(with_prs, 3)
        ws.diffstat_errors[(picked[0][0].uuid, picked[0][1].id)] = 400
        ws.diffstat_errors[(picked[1][0].uuid, picked[1][1].id)] = 555
        ws.deleted_fork_pull_requests.add((picked[2][0].uuid, picked[2][1].id))


def next_comment_id(ws) -> int:
    """A new workspace-wide comment id (ascending, as Bitbucket's)."""
    ws.comment_serial += 1
    return COMMENT_IDS + ws.comment_serial


def new_comment(rng: random.Random, ws, pr, user, created_us: int, parent: Optional[Comment] = None) -> Comment:
    """A published comment by ``user`` at ``created_us`` (inline one time in three, unless a reply)."""
    inline = None
    if parent is None and rng.random() < 0.35:
        line = rng.randint(1, 400)
        inline = (rng.choice(FILES), *rng.choice(((None, line), (line, None), (None, None))))
    return Comment(id=next_comment_id(ws), user=user, created_us=created_us,
                   updated_us=created_us + rng.randrange(1, 200), raw=rng.choice(WORDS),
                   inline=parent.inline if parent else inline, parent=parent.id if parent else None)


def _comments(rng: random.Random, ws, pr, users) -> None:
    pr.comments = []
    if pr.comment_count <= 0:
        return
    span = max(1, pr.updated_us - pr.created_us)
    dates = sorted(pr.created_us + rng.randrange(span) for _ in range(pr.comment_count))
    for date in dates:
        parent = rng.choice(pr.comments) if pr.comments and rng.random() < 0.3 else None
        pr.comments.append(new_comment(rng, ws, pr, rng.choice(users), date, parent))
    for c in pr.comments:
        if c.inline and c.parent is None and rng.random() < 0.3:
            c.resolution = (rng.choice(users), min(pr.updated_us, c.created_us + rng.randrange(SECOND, DAY)))
        if rng.random() < 0.15:  # edited later
            c.updated_us = min(pr.updated_us, c.created_us + rng.randrange(SECOND, 2 * HOUR))
            c.raw += " (edited)"
    if rng.random() < 0.2:
        pr.comments.append(Comment(id=next_comment_id(ws), user=rng.choice(users), created_us=pr.created_us + rng.randrange(span),
                                   updated_us=pr.updated_us, raw="", deleted=True))
    if rng.random() < 0.15:
        pr.comments.append(Comment(id=next_comment_id(ws), user=ws.owner, created_us=pr.created_us + rng.randrange(span),
                                   updated_us=pr.updated_us, raw="Draft: revisit this", pending=True))
    pr.comments.sort(key=lambda c: c.id)


def _tags(rng: random.Random, ws, repo) -> None:
    repo.tags = []
    head = repo.main_head()
    if head is None:
        return
    graph = repo.graph
    _, order = graph.listing([head], ())
    for n in range(min(len(order), rng.choice((0, 1, 2, 3, 5)))):
        idx = order[min(len(order) - 1, n * max(1, len(order) // 5))]
        commit = graph.commits[idx]
        name = f"v1.{9 - n}.0"
        if rng.random() < 0.3:
            repo.tags.append(Tag(name, idx))
        else:
            tagger = rng.choice([a for a in ws.authors if a[1] is not None] or ws.authors)
            repo.tags.append(Tag(name, idx, commit.date_us + rng.randrange(SECOND, HOUR) // SECOND * SECOND,
                                 f"Release {name}\n", tagger))


# ------------------------------------------------------------------ derived lists
def published(pr) -> List[Comment]:
    """The comments other users see (no drafts), deleted ones included, by id."""
    return [c for c in pr.comments if not c.pending]


def activity(ws, repo) -> List[Dict[str, Any]]:
    """The repository-wide activity feed, newest first (see the module docstring)."""
    dated: List[Tuple[int, int, Dict[str, Any]]] = []
    for pr in repo.pull_requests:
        ref = pull_request_ref(ws, repo, pr)
        dated.append((pr.created_us, 0, {"pull_request": ref, "update": _update(ws, repo, pr, "OPEN", pr.author, pr.created_us)}))
        if pr.state != "OPEN":
            closed = pr.closed_us if pr.closed_us is not None else pr.updated_us
            dated.append((closed, 1, {"pull_request": ref, "update": _update(ws, repo, pr, pr.state, pr.closed_by or pr.author, closed)}))
        for p in pr.participants:
            if p.participated_us is not None and p.state in ("approved", "changes_requested"):
                kind = "approval" if p.state == "approved" else "changes_requested"
                dated.append((p.participated_us, 2, {"pull_request": ref, kind: {
                    "date": fmt_us(p.participated_us), "user": shapes.account(p.account), "pullrequest": ref}}))
        for c in published(pr):
            if not c.deleted:
                dated.append((c.created_us, 3, {"pull_request": ref, "comment": comment_api(ws, repo, pr, c)}))
    dated.sort(key=lambda d: (d[0], d[1]), reverse=True)
    return [entry for _, _, entry in dated]


def pull_request_ref(ws, repo, pr) -> Dict[str, Any]:
    """``{type, id, title, links}`` as embedded in comments and activity."""
    full = f"{ws.slug}/{repo.slug}"
    return {"type": "pullrequest", "id": pr.id, "title": pr.title,
            "links": {"self": {"href": f"{shapes.API}/repositories/{full}/pullrequests/{pr.id}"},
                      "html": {"href": f"{shapes.WEB}/{full}/pull-requests/{pr.id}"}}}


def _update(ws, repo, pr, state: str, author, date_us: int) -> Dict[str, Any]:
    whole = shapes.pullrequest(ws, repo, pr)
    return {"state": state, "title": pr.title, "description": pr.description, "reviewers": whole["reviewers"],
            "changes": {}, "reason": pr.reason if state != "OPEN" else "", "author": shapes.account(author),
            "date": fmt_us(date_us), "destination": whole["destination"], "source": whole["source"]}


def comment_api(ws, repo, pr, c: Comment) -> Dict[str, Any]:
    """A ``pullrequest_comment`` as ``…/pullrequests/{id}/comments`` lists it."""
    full = f"{ws.slug}/{repo.slug}"
    base = f"{shapes.API}/repositories/{full}/pullrequests/{pr.id}/comments"
    out: Dict[str, Any] = {
        "id": c.id, "created_on": fmt_us(c.created_us), "updated_on": fmt_us(c.updated_us),
        "content": shapes.rendered(c.raw), "user": shapes.account(c.user), "deleted": c.deleted,
    }
    if c.inline is not None:
        out["inline"] = {"from": c.inline[1], "to": c.inline[2], "path": c.inline[0]}
    if c.parent is not None:
        out["parent"] = {"id": c.parent, "links": {"self": {"href": f"{base}/{c.parent}"}}}
    if c.resolution is not None:
        out["resolution"] = {"type": "comment_resolution", "user": shapes.account(c.resolution[0]),
                             "created_on": fmt_us(c.resolution[1])}
    out.update(pending=c.pending, type="pullrequest_comment",
               links={"self": {"href": f"{base}/{c.id}"},
                      "html": {"href": f"{shapes.WEB}/{full}/pull-requests/{pr.id}/_/diff#comment-{c.id}"}},
               pullrequest=pull_request_ref(ws, repo, pr))
    return out


def pull_request_commits(repo, pr) -> List[int]:
    """Commit indexes of a pull request, newest first: empty once its source branch is gone."""
    graph = repo.graph
    if pr.source_branch not in graph.branches:
        return []
    tip, base = graph.resolve(pr.source_hash), graph.resolve(pr.dest_hash)
    if tip is None:
        return []
    _, order = graph.listing([tip], [base] if base is not None else ())
    return order


def revision_spec(pr) -> str:
    """``{source 12}..{destination 12}``: where ``…/pullrequests/{id}/diffstat`` redirects."""
    return f"{pr.source_hash[:12]}..{pr.dest_hash[:12]}"


def diffstat(ws, repo, spec: str) -> List[Dict[str, Any]]:
    """The files a revision spec changes (drawn from the spec: the same answer every time)."""
    rng = random.Random(f"{ws.seed}-diffstat-{repo.uuid}-{spec}")
    full = f"{ws.slug}/{repo.slug}"
    source = spec.split("..")[0]
    out = []
    for path in sorted(rng.sample(FILES, rng.randint(1, 6))):
        status = rng.choices(("modified", "added", "removed", "renamed"), (70, 15, 8, 7))[0]
        old_path = f"old/{path}" if status == "renamed" else path

        def file(p: str) -> Dict[str, Any]:
            return {"path": p, "type": "commit_file", "escaped_path": p,
                    "links": {"self": {"href": f"{shapes.API}/repositories/{full}/src/{source}/{p}"}}}

        out.append({"type": "diffstat", "lines_added": 0 if status == "removed" else rng.randint(1, 300),
                    "lines_removed": 0 if status == "added" else rng.randint(0, 120), "status": status,
                    "old": None if status == "added" else file(old_path), "new": None if status == "removed" else file(path)})
    return out


def tag_api(ws, repo, tag: Tag) -> Dict[str, Any]:
    """A ``tag`` as ``…/refs/tags`` lists it (``target``: the whole commit)."""
    full = f"{ws.slug}/{repo.slug}"
    tagger = None
    if tag.tagger is not None:
        raw, acc = tag.tagger
        tagger = {"type": "author", "raw": raw, **({"user": shapes.account(acc)} if acc is not None else {})}
    return {"name": tag.name, "type": "tag", "message": tag.message,
            "date": fmt_s(tag.date_us) if tag.date_us is not None else None, "tagger": tagger,
            "target": ws.commit_api(repo, tag.target),
            "links": {"self": {"href": f"{shapes.API}/repositories/{full}/refs/tags/{tag.name}"},
                      "commits": {"href": f"{shapes.API}/repositories/{full}/commits/{tag.name}"},
                      "html": {"href": f"{shapes.WEB}/{full}/commits/tag/{tag.name}"}}}


def branch_api(ws, repo, name: str) -> Dict[str, Any]:
    """A ``branch`` as ``…/refs/branches`` lists it."""
    full = f"{ws.slug}/{repo.slug}"
    return {"name": name, "links": {"html": {"href": f"{shapes.WEB}/{full}/branch/{name}"}},
            "default_merge_strategy": "merge_commit", "merge_strategies": ["merge_commit", "squash", "fast_forward"],
            "type": "branch", "target": ws.commit_api(repo, repo.graph.branches[name])}


def project_api(ws, project) -> Dict[str, Any]:
    """A ``project`` as ``GET /workspaces/{workspace}/projects`` lists it."""
    out = shapes.project(ws, project)
    out["links"]["repositories"] = {"href": f'{shapes.API}/repositories/{ws.slug}?q=project.key="{project.key}"'}
    ref = shapes.workspace_ref(ws)
    owner = {"display_name": ws.slug, "links": {"self": {"href": f"{shapes.API}/workspaces/{shapes._q(ws.uuid)}"},
                                                "avatar": dict(shapes.AVATAR),
                                                "html": {"href": f"{shapes.WEB}/{shapes._q(ws.uuid)}/"}},
             "type": "team", "uuid": ws.uuid, "username": ws.slug}
    out.update(owner=owner, workspace=ref, is_private=project.is_private, description=project.description,
               created_on=fmt_us(project.created_us), updated_on=fmt_us(project.updated_us),
               has_publicly_visible_repos=False)
    return out
