"""Plain model objects behind the sandbox's API shapes (rendered by ``shapes.py``)."""

from __future__ import annotations

import random
from typing import Any, List, Optional

from .gitgraph import CommitGraph
from .util import new_uuid


class Account:
    """A Bitbucket account: ``type`` is ``user`` or ``app_user``."""

    def __init__(self, uuid, account_id, display_name, nickname, email, created_us, type_="user", kind=None):
        self.uuid, self.account_id, self.display_name, self.nickname = uuid, account_id, display_name, nickname
        self.email, self.created_us, self.type, self.kind = email, created_us, type_, kind


class Project:
    """A workspace project; dates, ``description`` and ``is_private`` are set by ``reviews.add_reviews``."""

    def __init__(self, key, uuid, name):
        self.key, self.uuid, self.name = key, uuid, name
        self.created_us = self.updated_us = 0
        self.description: Optional[str] = None
        self.is_private = True


class Member:
    """A workspace membership; ``added_us`` None means no added_on/last_accessed fields."""

    def __init__(self, account, added_us=None, last_accessed_us=None):
        self.account, self.added_us, self.last_accessed_us = account, added_us, last_accessed_us


class Participant:
    """One entry of a pull request's ``participants``: a REVIEWER or a PARTICIPANT (commenter).

    ``state`` is ``approved``, ``changes_requested`` or None; ``participated_us`` None renders
    ``participated_on: null`` (a reviewer who has not acted yet).
    """

    def __init__(self, account, role: str, approved: bool = False, state: Optional[str] = None,
                 participated_us: Optional[int] = None):
        self.account, self.role, self.approved, self.state = account, role, approved, state
        self.participated_us = participated_us


class PullRequest:
    """A pull request; hashes are full 40-char SHAs (rendered abbreviated to 12).

    ``participants`` lists :class:`Participant`; the reviewers are those with role REVIEWER.
    """

    def __init__(self, **fields):
        self.id = 0
        self.title = self.description = self.reason = ""
        self.state = "OPEN"
        self.author = self.closed_by = None
        self.created_us = self.updated_us = 0
        self.source_branch = self.dest_branch = ""
        self.source_hash = self.dest_hash = ""
        self.merge_hash: Optional[str] = None
        self.comment_count = self.task_count = 0
        self.close_source_branch = False
        self.participants: List[Participant] = []
        self.comments: List[Any] = []  # reviews.Comment, by id
        self.closed_us: Optional[int] = None  # when it was merged, declined or superseded
        self.__dict__.update(fields)


class Deployment:
    """A pipelines deployment: ``state`` COMPLETED / IN_PROGRESS / UNDEPLOYED."""

    def __init__(self, **fields):
        self.status: Optional[str] = None
        self.started_us: Optional[int] = None
        self.completed_us: Optional[int] = None
        self.has_release = True
        self.version = 1
        self.__dict__.update(fields)


class Repository:
    """A repository with its commit graph, pull requests (by id) and deployments (oldest first)."""

    def __init__(self, **fields):
        self.graph = CommitGraph()
        self.main_name: Optional[str] = None
        self.pull_requests: List[PullRequest] = []
        self.deployments: List[Deployment] = []
        self.environments: List[str] = []
        self.environment_models: List["Environment"] = []  # what GET .../environments lists (by rank)
        self.pipelines: List["Pipeline"] = []  # oldest first
        self.pipelines_enabled = True
        self.pipeline_number = 0  # the last pipeline build_number
        self.build_number = 0
        self.branch_serial = 0
        self.tags: List[Any] = []  # reviews.Tag
        self.__dict__.update(fields)

    def pipeline(self, key: str) -> Optional["Pipeline"]:
        """A pipeline by ``{uuid}`` (braces optional, case-insensitive), or None."""
        key = key.lower().strip("{}")
        return next((p for p in self.pipelines if p.uuid.lower().strip("{}") == key), None)

    def main_head(self) -> Optional[int]:
        """Index of the main branch's head commit, or None for an empty repository."""
        return self.graph.branches.get(self.main_name) if self.main_name else None


def new_deployment(rng: random.Random, repo: Repository, commit_hash: str, created_us: int, state: str) -> Deployment:
    """A deployment of ``commit_hash`` to one of the repository's environments (dates set by caller)."""
    repo.build_number += 1
    return Deployment(
        uuid=new_uuid(rng), environment_uuid=rng.choice(repo.environments), step_uuid=new_uuid(rng),
        pipeline_uuid=new_uuid(rng), release_uuid=new_uuid(rng), build_number=repo.build_number,
        commit_hash=commit_hash, number=len(repo.deployments) + 1, version=rng.randint(1, 6),
        state=state, created_us=created_us, has_release=rng.random() < 0.85,
    )


class Environment:
    """A deployment environment (``GET .../environments``): Test, Staging or Production, with no dates."""

    def __init__(self, **fields):
        self.uuid = self.name = ""
        self.rank = 0
        self.hidden = self.deployment_gate_enabled = self.admin_only = False
        self.environment_lock_enabled = True
        self.__dict__.update(fields)

    @property
    def slug(self) -> str:
        """``test``, ``staging``, ``production``."""
        return self.name.lower()


class Step:
    """A pipeline step: ``state`` PENDING / READY / IN_PROGRESS / COMPLETED (with ``result``).

    Dates are None until the step starts / completes (PENDING and NOT_RUN steps have none);
    ``secret`` numbers its registry credentials and script token (``sandbox-...-<secret>``).
    """

    def __init__(self, **fields):
        self.uuid = self.name = ""
        self.state = "PENDING"
        self.result: Optional[str] = None
        self.manual = False
        self.started_us: Optional[int] = None
        self.completed_us: Optional[int] = None
        self.run_number = 1
        self.max_time = 120
        self.image = "atlassian/default-image:4"
        self.secret = 0
        self.__dict__.update(fields)

    @property
    def duration(self) -> Optional[int]:
        """Whole seconds between start and completion (None unless both are set)."""
        if self.started_us is None or self.completed_us is None:
            return None
        return max(0, (self.completed_us - self.started_us) // 1_000_000)


class Pipeline:
    """A pipeline run: ``state`` PENDING / IN_PROGRESS (``stage`` RUNNING, PAUSED, HALTED) / COMPLETED
    (``result`` SUCCESSFUL, FAILED, ERROR, STOPPED, EXPIRED), oldest first in ``Repository.pipelines``.

    ``target`` is ``ref`` (a branch), ``commit`` or ``pullrequest``; a custom pipeline (``selector``
    ``custom``) carries ``variables`` ``[(key, value)]``. Dates render with ``digits`` (5-9) fraction
    digits; ``created_ns`` / ``completed_ns`` (0-999) are the nanoseconds below the microsecond.
    """

    def __init__(self, **fields):
        self.uuid = ""
        self.build_number = 0
        self.creator: Optional[Account] = None
        self.target = "ref"
        self.ref_name = "main"
        self.selector = "branches"
        self.custom_name = ""
        self.commit_hash = ""
        self.pr: Optional[PullRequest] = None
        self.trigger = "PUSH"
        self.state = "PENDING"
        self.stage: Optional[str] = None
        self.result: Optional[str] = None
        self.terminator: Optional[Account] = None
        self.created_us = 0
        self.created_ns = 0
        self.completed_us: Optional[int] = None
        self.completed_ns = 0
        self.digits = 6
        self.run_number = 1
        self.first_successful = False
        self.expired = False
        self.variables: List[tuple] = []
        self.steps: List[Step] = []
        self.__dict__.update(fields)

    @property
    def duration(self) -> int:
        """Seconds the steps ran (0 before any step started)."""
        return sum(s.duration or 0 for s in self.steps)

    @property
    def build_seconds(self) -> int:
        """Build minutes billed, in seconds: the steps' run time plus a little set-up each."""
        return sum((s.duration or 0) + (1 if s.duration else 0) for s in self.steps)
