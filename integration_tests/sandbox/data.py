"""The sandbox's data: a deterministic, mutable Bitbucket workspace.

``generate_workspace(...)`` builds a :class:`Workspace` (see ``builder.py`` for the recipe). The workspace
owns a simulated clock (``workspace.now``) that starts at a fixed instant; every generated date lies
before it and every mutation advances it, so runs are reproducible. ``workspace.records(stream)`` is
the ground truth a connector's output can be compared with.
"""

from __future__ import annotations

import functools
import json
import random
import threading
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional

from . import pipelines as runs
from . import reviews
from . import shapes
from .models import Account, Deployment, Environment, Member, Pipeline, PullRequest, Repository, Step, new_deployment
from .people import draw_participants
from .util import SECOND, deploy_micros, fmt_us, fmt_z, from_datetime, new_hash, no_gc, to_datetime

DEFAULT_NOW = "2026-11-01T00:00:00+00:00"
STREAMS = ("repositories", "pull_requests", "commits", "deployments", "workspace_users")
PIPELINE_STREAMS = ("environments", "pipelines", "pipeline_steps")  # in records(), not (yet) in the connector's STREAMS
REVIEW_STREAMS = ("pull_request_activity", "pull_request_comments", "pull_request_commits", "pull_request_diffstat",
                  "branches", "tags", "projects")
MUTATIONS = (
    "add_pull_request", "update_pull_request", "push_commits", "push_late_branch", "add_deployment",
    "complete_deployment", "update_repository", "delete_repository", "add_member",
    "add_pipeline", "complete_pipeline", "resume_pipeline",
    "edit_comment", "delete_comment", "add_tag", "update_project", "add_branches",
)


def _mutation(method: Callable) -> Callable:
    """Run a mutation under the workspace lock, bump the version and record the change."""

    @functools.wraps(method)
    def wrapper(self: "Workspace", *args, **kwargs):
        with self.lock:
            result = method(self, *args, **kwargs)
            self.version += 1
            self.changes.append({"op": method.__name__, "at": fmt_us(self.now_us), "result": result})
            return result

    return wrapper


class Workspace:
    """A generated workspace: repositories, members, a clock and the mutations tests use.

    Every mutation returns a JSON-serialisable dict describing what changed and appends it to
    ``workspace.changes``. Mutations take ``repo_slug`` (slug or ``{uuid}``) and raise ``KeyError`` for
    an unknown repository and ``ValueError`` for an impossible change.
    """

    def __init__(self, slug: str, seed: int, now_us: int):
        self.slug = slug
        self.seed = seed
        self.now_us = now_us
        self.rng = random.Random(f"{seed}:mutations")
        self.people_rng = random.Random(f"{seed}:people-mutations")  # reviewers of new pull requests
        self.pipelines_rng = random.Random(f"{seed}-pipelines-mutations")  # everything the pipeline mutations draw
        self.secret_serial = 0  # the <n> of the last sandbox-...-<n> secret (pipelines.py)
        self.pipelines_next_link = True  # False: pipeline and step pages carry no next link (2020-21 behaviour)
        self.ignore_fields = False  # True: the pipelines module ignores fields= and sends everything, secrets too
        self.lock = threading.RLock()
        self.version = 0
        self.changes: List[Dict[str, Any]] = []
        self.repositories: List[Repository] = []
        self.members: List[Member] = []
        self.authors: List[Any] = []  # (raw, Account|None) pool for commits
        self.uuid = self.name = ""
        self.created_us = 0
        self.owner: Optional[Account] = None
        self.projects: List[Any] = []
        self.reviews_rng = random.Random(f"{seed}-reviews-mutations")  # what the review mutations draw
        self.comment_serial = 0  # the last pull request comment id (reviews.next_comment_id)
        self.diffstat_errors: Dict[tuple, int] = {}  # (repository uuid, pull request id) -> 400 | 555
        self.deleted_fork_pull_requests: set = set()  # (repository uuid, pull request id): commits answer 404

    # ----------------------------------------------------------------- lookups
    @property
    def now(self) -> datetime:
        """The simulated clock as an aware UTC datetime."""
        return to_datetime(self.now_us)

    def repository(self, key: str) -> Optional[Repository]:
        """Find a repository by slug (case-insensitive) or ``{uuid}``."""
        key = key.lower()
        for repo in self.repositories:
            if repo.slug == key or repo.uuid.lower() == key or repo.uuid.lower() == "{" + key + "}":
                return repo
        return None

    def _repo(self, key: str) -> Repository:
        repo = self.repository(key)
        if repo is None:
            raise KeyError(f"Repository {self.slug}/{key} not found")
        return repo

    def main_head(self, repo_slug: str) -> Optional[str]:
        """Hash of the head of the main branch (None when the repository is empty)."""
        repo = self._repo(repo_slug)
        head = repo.main_head()
        return None if head is None else repo.graph.commits[head].hash

    def pipeline(self, repo_slug: str, uuid: str) -> Pipeline:
        """A pipeline model by repository and ``{uuid}`` (``KeyError`` when unknown)."""
        found = self._repo(repo_slug).pipeline(uuid)
        if found is None:
            raise KeyError(f"pipeline {uuid} not found in {repo_slug}")
        return found

    def pipelines_in(self, state: str, stage: Optional[str] = None) -> List[Dict[str, str]]:
        """``[{"repository": slug, "uuid": ...}]`` of every pipeline in ``state`` (and ``stage``), e.g.
        ``pipelines_in("IN_PROGRESS", "HALTED")``; repositories in list order, pipelines oldest first."""
        with self.lock:
            return [{"repository": r.slug, "uuid": p.uuid} for r in self.repositories
                    for p in runs.in_states(r.pipelines, state, stage)]

    def branch_heads(self, repo_slug: str) -> Dict[str, str]:
        """``{branch name: head hash}`` for every branch of a repository."""
        graph = self._repo(repo_slug).graph
        return {name: graph.commits[idx].hash for name, idx in sorted(graph.branches.items())}

    # ------------------------------------------------------------- API shapes
    def repository_api(self, repo: Repository) -> Dict[str, Any]:
        """Render a repository as the API does."""
        return shapes.repository(self, repo)

    def pull_request_api(self, repo: Repository, pr: PullRequest) -> Dict[str, Any]:
        """Render a pull request as the list endpoint does."""
        return shapes.pullrequest(self, repo, pr)

    def commit_api(self, repo: Repository, idx: int) -> Dict[str, Any]:
        """Render commit number ``idx`` of a repository."""
        return shapes.commit(self, repo, repo.graph.commits[idx])

    def deployment_api(self, repo: Repository, dep: Deployment) -> Dict[str, Any]:
        """Render a deployment as the list endpoint does."""
        return shapes.deployment(self, repo, dep)

    def environment_api(self, env: Environment) -> Dict[str, Any]:
        """Render a deployment environment."""
        return shapes.environment(env)

    def pipeline_api(self, repo: Repository, pipeline: Pipeline) -> Dict[str, Any]:
        """Render a pipeline (list and single endpoints)."""
        return shapes.pipeline(self, repo, pipeline)

    def step_api(self, repo: Repository, pipeline: Pipeline, step: Step) -> Dict[str, Any]:
        """Render a pipeline step (list and single endpoints)."""
        return shapes.step(self, repo, pipeline, step)

    def membership_api(self, member: Member) -> Dict[str, Any]:
        """Render a workspace membership."""
        return shapes.membership(self, member)

    def records(self, stream: str, api_url: Optional[str] = None) -> List[Dict[str, Any]]:
        """Ground truth: every current API object of a stream, across all repositories.

        Repositories by created_on, pull requests by repository then id (whole objects, with
        ``participants`` and ``reviewers``), commits in each repository's ``/commits`` order (reachable
        commits only), deployments newest first; ``PIPELINE_STREAMS``: environments by rank, pipelines oldest
        first (none for a repository with Pipelines off), each pipeline's steps in order. API hrefs point at ``https://api.bitbucket.org/2.0``,
        or at ``api_url`` when given (e.g. ``server.api_url``: what a client of that server receives).
        """
        out = self._records(stream)
        return out if api_url is None else json.loads(shapes.rebase(json.dumps(out).encode(), api_url))

    def _records(self, stream: str) -> List[Dict[str, Any]]:
        with self.lock, no_gc():
            repos = sorted(self.repositories, key=lambda r: (r.created_us, r.slug))
            if stream == "repositories":
                return [self.repository_api(r) for r in repos]
            if stream == "pull_requests":
                return [self.pull_request_api(r, pr) for r in repos for pr in r.pull_requests]
            if stream == "commits":
                out = []
                for r in repos:
                    _, order = r.graph.listing(r.graph.heads(), ())
                    out.extend(self.commit_api(r, idx) for idx in order)
                return out
            if stream == "deployments":
                return [self.deployment_api(r, d) for r in repos for d in reversed(r.deployments)]
            if stream in ("workspace_users", "members"):
                return [self.membership_api(m) for m in self.members]
            if stream == "environments":
                return [self.environment_api(e) for r in repos for e in r.environment_models]
            if stream == "pipelines":
                return [self.pipeline_api(r, p) for r in repos if r.pipelines_enabled for p in r.pipelines]
            if stream == "pipeline_steps":
                return [self.step_api(r, p, s) for r in repos if r.pipelines_enabled for p in r.pipelines for s in p.steps]
            if stream == "pull_request_activity":
                return [entry for r in repos for entry in reviews.activity(self, r)]
            if stream == "pull_request_comments":
                return [reviews.comment_api(self, r, pr, c) for r in repos for pr in r.pull_requests
                        for c in reviews.published(pr)]
            if stream == "pull_request_commits":
                return [self.commit_api(r, idx) for r in repos for pr in r.pull_requests
                        if (r.uuid, pr.id) not in self.deleted_fork_pull_requests
                        for idx in reviews.pull_request_commits(r, pr)]
            if stream == "pull_request_diffstat":
                return [f for r in repos for pr in r.pull_requests if (r.uuid, pr.id) not in self.diffstat_errors
                        for f in reviews.diffstat(self, r, reviews.revision_spec(pr))]
            if stream == "branches":
                return [reviews.branch_api(self, r, name) for r in repos for name in sorted(r.graph.branches)]
            if stream == "tags":
                return [reviews.tag_api(self, r, t) for r in repos for t in sorted(r.tags, key=lambda t: t.name)]
            if stream == "projects":
                return [reviews.project_api(self, p) for p in sorted(self.projects, key=lambda p: (p.created_us, p.key))]
        raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS + PIPELINE_STREAMS + REVIEW_STREAMS}")

    # ---------------------------------------------------------------- helpers
    def tick(self, min_s: int = 30, max_s: int = 300) -> int:
        """Advance the clock by a random 30 s - 5 min (plus microseconds) and return it."""
        self.now_us += self.rng.randint(min_s, max_s) * SECOND + self.rng.randrange(1, SECOND)
        return self.now_us

    def _ztick(self, min_s: int, max_s: int) -> int:
        """Like ``tick`` but with a fraction that renders as 5-6 digits in deployment dates."""
        t = self.tick(min_s, max_s)
        self.now_us = t - t % SECOND + deploy_micros(self.rng)
        return self.now_us

    def _ptick(self, min_s: int = 30, max_s: int = 300) -> int:
        """Like ``tick`` but drawing from ``pipelines_rng`` (the other mutations' draws stay the same)."""
        self.now_us += self.pipelines_rng.randint(min_s, max_s) * SECOND + self.pipelines_rng.randrange(1, SECOND)
        return self.now_us

    def set_now(self, when: datetime) -> None:
        """Move the clock forward to ``when`` (never backwards)."""
        self.now_us = max(self.now_us, from_datetime(when))

    def _author(self):
        return self.rng.choice(self.authors)

    def _commit(self, repo: Repository, parents, date_us: int, message: str, author=None) -> int:
        raw, acc = author or self._author()
        commit = repo.graph.add(new_hash(self.rng), parents, date_us - date_us % SECOND, raw, acc, message)
        return commit.idx

    def _ensure_main(self, repo: Repository) -> int:
        if repo.main_head() is None:
            repo.main_name = "main"
            repo.graph.set_branch("main", self._commit(repo, (), self.tick(), "Initial commit\n"))
        return repo.main_head()

    def _hashes(self, repo: Repository, idxs) -> List[str]:
        return [repo.graph.commits[i].hash for i in idxs]

    # -------------------------------------------------------------- mutations
    @_mutation
    def push_commits(self, repo_slug: str, n: int = 1) -> Dict[str, Any]:
        """Push ``n`` new commits onto the main branch (creating it in an empty repository)."""
        repo = self._repo(repo_slug)
        previous = self.main_head(repo.slug)
        head = repo.main_head()
        new = []
        for _ in range(n):
            parents = () if head is None else (head,)
            head = self._commit(repo, parents, self.tick(), f"Sandbox change {len(repo.graph) + 1}\n")
            new.append(head)
            if repo.main_name is None:
                repo.main_name = "main"
            repo.graph.set_branch(repo.main_name, head)
        repo.updated_us = self.now_us
        return {"repository": repo.slug, "previous_head": previous, "head": self.main_head(repo.slug),
                "commits": self._hashes(repo, new)}

    @_mutation
    def push_late_branch(self, repo_slug: str, n: int = 3, days_old: int = 400) -> Dict[str, Any]:
        """Merge a new branch whose ``n`` commits carry author dates ``days_old`` days in the past.

        The commits are new to a consumer but dated before (by default) all generated history;
        the branch is merged into main with a new merge commit dated now and then deleted.
        """
        repo = self._repo(repo_slug)
        self._ensure_main(repo)
        previous = self.main_head(repo.slug)
        base = repo.main_head()
        repo.branch_serial += 1
        branch = f"legacy/import-{repo.branch_serial}"
        old = self.now_us - days_old * 86400 * SECOND
        tip, late = base, []
        for i in range(n):
            tip = self._commit(repo, (tip,), old + i * 600 * SECOND, f"Legacy import part {i + 1}\n")
            late.append(tip)
        repo.graph.set_branch(branch, tip)
        merge = self._commit(repo, (base, tip), self.tick(), f"Merged in {branch}\n")
        repo.graph.set_branch(repo.main_name, merge)
        repo.graph.delete_branch(branch)
        repo.updated_us = self.now_us
        return {"repository": repo.slug, "branch": branch, "previous_head": previous,
                "commits": self._hashes(repo, late), "merge_commit": repo.graph.commits[merge].hash}

    @_mutation
    def add_branches(self, repo_slug: str, n: int = 1) -> Dict[str, Any]:
        """Push ``n`` new branches, each one new commit off main: ``n`` new tips of the commit graph."""
        repo = self._repo(repo_slug)
        base = self._ensure_main(repo)
        made = {}
        for _ in range(n):
            repo.branch_serial += 1
            name = f"topic/sandbox-{repo.branch_serial}"
            tip = self._commit(repo, (base,), self.tick(), f"Work on {name}\n")
            repo.graph.set_branch(name, tip)
            made[name] = repo.graph.commits[tip].hash
        repo.updated_us = self.now_us
        return {"repository": repo.slug, "branches": made}

    @_mutation
    def add_pull_request(self, repo_slug: str) -> Dict[str, Any]:
        """Open a new pull request from a new one-commit branch off main."""
        repo = self._repo(repo_slug)
        base = self._ensure_main(repo)
        repo.branch_serial += 1
        branch = f"feature/sandbox-{repo.branch_serial}"
        author = self._author()
        tip = self._commit(repo, (base,), self.tick(), f"Work on {branch}\n", author)
        repo.graph.set_branch(branch, tip)
        created = self.tick()
        pr = PullRequest(
            id=len(repo.pull_requests) + 1, title=f"Sandbox change {repo.branch_serial}",
            description=f"Adds sandbox change {repo.branch_serial}.", state="OPEN",
            author=author[1] or self.owner, created_us=created, updated_us=created,
            source_branch=branch, source_hash=repo.graph.commits[tip].hash, dest_branch=repo.main_name,
            dest_hash=repo.graph.commits[base].hash, close_source_branch=self.rng.random() < 0.5,
        )
        users = [m.account for m in self.members if m.account.type == "user"]
        pr.participants = [p for p in draw_participants(self.people_rng, pr, users) if p.role == "REVIEWER"]
        repo.pull_requests.append(pr)
        repo.updated_us = self.now_us
        return {"repository": repo.slug, "id": pr.id, "branch": branch, "commits": [pr.source_hash]}

    @_mutation
    def update_pull_request(self, repo_slug: str, id: int, state: Optional[str] = None) -> Dict[str, Any]:
        """Change a pull request and bump its updated_on to the clock.

        OPEN -> ``state`` (default MERGED, via a merge commit on main; or DECLINED / SUPERSEDED).
        A closed pull request just gets a new comment.
        """
        repo = self._repo(repo_slug)
        prs = [p for p in repo.pull_requests if p.id == int(id)]
        if not prs:
            raise KeyError(f"pull request {id} not found in {repo.slug}")
        if state not in (None, "OPEN", "MERGED", "DECLINED", "SUPERSEDED"):
            raise ValueError(f"invalid pull request state {state!r}")
        pr = prs[0]
        before = pr.state
        if pr.state == "OPEN" and (state or "MERGED") != "OPEN":
            pr.state = state or "MERGED"
            pr.closed_by = self.owner
            if pr.state == "MERGED":
                graph = repo.graph
                tip = graph.resolve(pr.source_hash)
                base = self._ensure_main(repo)
                parents = (base,) if tip is None or tip in graph.reachable([base]) else (base, tip)
                merge = self._commit(repo, parents, self.tick(), f"Merged in {pr.source_branch} (pull request #{pr.id})\n")
                graph.set_branch(repo.main_name, merge)
                pr.merge_hash = graph.commits[merge].hash
                repo.updated_us = self.now_us
            if pr.close_source_branch and pr.state == "MERGED":
                repo.graph.delete_branch(pr.source_branch)
        else:
            pr.comment_count += 1
        pr.updated_us = self.tick()
        if before == "OPEN" and pr.state != "OPEN":
            pr.closed_us = pr.updated_us
        elif before != "OPEN":
            users = [m.account for m in self.members if m.account.type == "user"]
            comment = reviews.new_comment(self.reviews_rng, self, pr, self.reviews_rng.choice(users), pr.updated_us)
            comment.updated_us = comment.created_us
            pr.comments.append(comment)
        if pr.state == "MERGED":  # the merge was approved by its first reviewer
            reviewer = next((p for p in pr.participants if p.role == "REVIEWER"), None)
            if reviewer is not None and not reviewer.approved:
                reviewer.approved, reviewer.state, reviewer.participated_us = True, "approved", pr.updated_us
        return {"repository": repo.slug, "id": pr.id, "from": before, "to": pr.state, "updated_on": fmt_us(pr.updated_us)}

    @_mutation
    def add_deployment(self, repo_slug: str, state: str = "COMPLETED") -> Dict[str, Any]:
        """Deploy the head of main: ``state`` COMPLETED (SUCCESSFUL) or IN_PROGRESS."""
        if state not in ("COMPLETED", "IN_PROGRESS"):
            raise ValueError("state must be COMPLETED or IN_PROGRESS")
        repo = self._repo(repo_slug)
        head = repo.main_head()
        if head is None:
            raise ValueError(f"{repo.slug} has no commits to deploy")
        created = self._ztick(30, 300)
        dep = new_deployment(self.rng, repo, repo.graph.commits[head].hash, created, state)
        dep.started_us = self._ztick(5, 30)
        if state == "COMPLETED":
            dep.status, dep.completed_us = "SUCCESSFUL", self._ztick(20, 300)
        repo.deployments.append(dep)
        return {"repository": repo.slug, "uuid": dep.uuid, "state": state}

    @_mutation
    def complete_deployment(self, repo_slug: str, uuid: str, status: str = "SUCCESSFUL") -> Dict[str, Any]:
        """Finish an IN_PROGRESS deployment now (status SUCCESSFUL, FAILED or STOPPED)."""
        if status not in ("SUCCESSFUL", "FAILED", "STOPPED"):
            raise ValueError("status must be SUCCESSFUL, FAILED or STOPPED")
        repo = self._repo(repo_slug)
        found = [d for d in repo.deployments if d.uuid == uuid]
        if not found or found[0].state != "IN_PROGRESS":
            raise ValueError(f"no IN_PROGRESS deployment {uuid} in {repo.slug}")
        dep = found[0]
        dep.state, dep.status, dep.completed_us = "COMPLETED", status, self._ztick(30, 300)
        dep.version += 1
        return {"repository": repo.slug, "uuid": uuid, "state": "COMPLETED", "completed_on": fmt_z(dep.completed_us)}

    def _pipeline_result(self, repo: Repository, p: Pipeline) -> Dict[str, Any]:
        shown = shapes.pipeline(self, repo, p)
        return {"repository": repo.slug, "uuid": p.uuid, "build_number": p.build_number, "state": p.state,
                "stage": p.stage, "result": p.result, "steps": [s.uuid for s in p.steps],
                "created_on": shown["created_on"], "completed_on": shown.get("completed_on")}

    def _enabled(self, repo_slug: str) -> Repository:
        repo = self._repo(repo_slug)
        if not repo.pipelines_enabled:
            raise ValueError(f"Pipelines are turned off in {repo.slug}")
        return repo

    @_mutation
    def add_pipeline(self, repo_slug: str, state: str = "COMPLETED", result: Optional[str] = None,
                     stage: Optional[str] = None, custom_variables: bool = False) -> Dict[str, Any]:
        """Run a new pipeline (the newest, created now) and leave it in ``state``.

        COMPLETED with ``result`` (default SUCCESSFUL; FAILED, STOPPED, ERROR fail the first step),
        IN_PROGRESS with ``stage`` (default RUNNING: the first step runs; HALTED / PAUSED: the steps before
        the manual one ran and it waits) or PENDING. ``custom_variables``: a custom pipeline with
        variables (``sandbox-clear-secret-<n>``). The clock moves on by the time the steps ran; the
        repository's updated_on does not change.
        """
        if state not in ("COMPLETED", "IN_PROGRESS", "PENDING"):
            raise ValueError("state must be COMPLETED, IN_PROGRESS or PENDING")
        if (result is not None and state != "COMPLETED") or (stage is not None and state != "IN_PROGRESS"):
            raise ValueError("result goes with COMPLETED, stage with IN_PROGRESS")
        if stage not in (None,) + runs.STAGES or result not in (None,) + runs.RESULTS:
            raise ValueError(f"stage must be one of {runs.STAGES}, result one of {runs.RESULTS}")
        repo = self._enabled(repo_slug)
        rng = self.pipelines_rng
        p = runs.new_pipeline(rng, self, repo, self._ptick(), custom=custom_variables,
                              manual=stage in ("HALTED", "PAUSED"))
        if state == "COMPLETED":
            end = runs.complete(rng, p, p.created_us, result or "SUCCESSFUL", fail_at=0)
        elif state == "IN_PROGRESS" and stage in ("HALTED", "PAUSED"):
            end = runs.halt(rng, p, stage)
        elif state == "IN_PROGRESS":
            end = runs.running(rng, p, 0)
        else:
            end = p.created_us
        self.now_us = max(self.now_us, end)
        return self._pipeline_result(repo, p)

    @_mutation
    def complete_pipeline(self, repo_slug: str, uuid: str, result: str = "SUCCESSFUL") -> Dict[str, Any]:
        """Finish a PENDING or IN_PROGRESS pipeline now with ``result``: the waiting steps run (SUCCESSFUL),
        or the next one ends with ``result`` and the rest are NOT_RUN; completed_on and the durations are set."""
        repo = self._enabled(repo_slug)
        p = self.pipeline(repo.slug, uuid)
        if p.state == "COMPLETED":
            raise ValueError(f"pipeline {uuid} in {repo.slug} is already COMPLETED")
        self.now_us = max(self.now_us, runs.complete(self.pipelines_rng, p, self._ptick(5, 60), result, fail_at=0))
        return self._pipeline_result(repo, p)

    @_mutation
    def resume_pipeline(self, repo_slug: str, uuid: str) -> Dict[str, Any]:
        """A HALTED or PAUSED pipeline goes on (IN_PROGRESS / RUNNING): its waiting step starts now."""
        repo = self._enabled(repo_slug)
        p = self.pipeline(repo.slug, uuid)
        self.now_us = max(self.now_us, runs.resume(self.pipelines_rng, p, self._ptick(5, 60)))
        return self._pipeline_result(repo, p)

    def _comment(self, repo_slug: str, id: int, comment_id: Optional[int]):
        repo = self._repo(repo_slug)
        pr = next((p for p in repo.pull_requests if p.id == int(id)), None)
        if pr is None:
            raise KeyError(f"pull request {id} not found in {repo.slug}")
        live = [c for c in reviews.published(pr) if not c.deleted and (comment_id is None or c.id == int(comment_id))]
        if not live:
            raise ValueError(f"pull request {id} of {repo.slug} has no such published comment")
        return repo, pr, live[-1]

    @_mutation
    def edit_comment(self, repo_slug: str, id: int, comment_id: Optional[int] = None) -> Dict[str, Any]:
        """Edit a published comment of a pull request (its newest by default): new text, its
        updated_on and the pull request's updated_on = now."""
        repo, pr, comment = self._comment(repo_slug, id, comment_id)
        comment.updated_us = pr.updated_us = self.tick()
        comment.raw = f"{comment.raw} (edited at {fmt_us(comment.updated_us)})"
        return {"repository": repo.slug, "id": pr.id, "comment_id": comment.id, "updated_on": fmt_us(comment.updated_us)}

    @_mutation
    def delete_comment(self, repo_slug: str, id: int, comment_id: Optional[int] = None) -> Dict[str, Any]:
        """Delete a published comment (its newest by default): it stays listed with ``deleted: true``
        and no text; ``comment_count`` goes down by one and the pull request's updated_on = now."""
        repo, pr, comment = self._comment(repo_slug, id, comment_id)
        comment.deleted, comment.raw = True, ""
        comment.updated_us = pr.updated_us = self.tick()
        pr.comment_count = max(0, pr.comment_count - 1)
        return {"repository": repo.slug, "id": pr.id, "comment_id": comment.id, "comment_count": pr.comment_count}

    @_mutation
    def add_tag(self, repo_slug: str, lightweight: bool = False) -> Dict[str, Any]:
        """Tag the head of main (annotated, or ``lightweight``: no date, message or tagger); the push
        moves the repository's updated_on."""
        repo = self._repo(repo_slug)
        head = repo.main_head()
        if head is None:
            raise ValueError(f"{repo.slug} has no commits to tag")
        name = f"v2.{len(repo.tags)}.0"
        tagger = self.reviews_rng.choice([a for a in self.authors if a[1] is not None] or self.authors)
        now = self.tick()
        tag = reviews.Tag(name, head) if lightweight else reviews.Tag(name, head, now - now % SECOND, f"Release {name}\n", tagger)
        repo.tags.append(tag)
        repo.updated_us = now
        return {"repository": repo.slug, "name": name, "target": repo.graph.commits[head].hash, "lightweight": bool(lightweight)}

    @_mutation
    def update_project(self, key: str) -> Dict[str, Any]:
        """Edit a project's description: its updated_on = now."""
        project = next((p for p in self.projects if p.key == key), None)
        if project is None:
            raise KeyError(f"project {key} not found")
        project.updated_us = self.tick()
        project.description = f"Updated by the sandbox at {fmt_us(project.updated_us)}"
        return {"key": key, "uuid": project.uuid, "updated_on": fmt_us(project.updated_us)}

    @_mutation
    def update_repository(self, repo_slug: str) -> Dict[str, Any]:
        """Edit a repository's settings: new description and size, updated_on = now."""
        repo = self._repo(repo_slug)
        repo.updated_us = self.tick()
        repo.description = f"Updated by the sandbox at {fmt_us(repo.updated_us)}"
        repo.size += self.rng.randint(1000, 50000)
        return {"repository": repo.slug, "updated_on": fmt_us(repo.updated_us)}

    @_mutation
    def delete_repository(self, repo_slug: str) -> Dict[str, Any]:
        """Delete a repository with everything in it; its URLs answer 404 from now on."""
        repo = self._repo(repo_slug)
        self.repositories.remove(repo)
        self.tick()
        return {"repository": repo.slug, "uuid": repo.uuid}

    @_mutation
    def add_member(self) -> Dict[str, Any]:
        """Add a new user to the workspace (added_on = now, never accessed)."""
        from .builder import new_account  # local import: builder imports this module

        number = len(self.members) + 1
        acc = new_account(self.rng, number, self.now_us)
        self.members.append(Member(acc, added_us=self.tick(), last_accessed_us=None))
        self.authors.append((f"{acc.display_name} <{acc.email}>", acc))
        return {"uuid": acc.uuid, "account_id": acc.account_id, "display_name": acc.display_name}


def generate_workspace(seed: int = 1, repositories: int = 10, pull_requests: int = 300, commits: int = 600,
                       deployments: int = 60, members: int = 12, slug: str = "acme-sandbox",
                       now: str = DEFAULT_NOW) -> Workspace:
    """Build a deterministic workspace; counts are totals spread unevenly over the repositories.

    One repository (when there are at least two) is empty: no commits, pull requests or deployments.
    ``commits`` counts commits reachable from branches (what ``/commits`` lists).
    """
    from .builder import build

    with no_gc():
        return build(seed=seed, repositories=repositories, pull_requests=pull_requests, commits=commits,
                     deployments=deployments, members=members, slug=slug, now=now)
