"""Environments, pipelines and their steps: generated per repository, and played forward by the mutations.

Everything here draws from its own ``random.Random`` (``f"{seed}-pipelines"`` when building,
``Workspace.pipelines_rng`` for mutations), never from the generator's or the mutations' main rng, so the
other streams' data is the same with or without pipelines.

A pipeline runs its steps one after the other: a step starts a few seconds after the previous one ended,
a failing step (FAILED, STOPPED, ERROR) leaves the rest NOT_RUN, a manual step (``Deploy to production``)
halts the pipeline (IN_PROGRESS / HALTED or PAUSED) until it is resumed. Secrets are numbered from
``Workspace.secret_serial``: custom pipelines' variables ``sandbox-clear-secret-<n>``, each step's registry
credentials ``sandbox-registry-password-<n>...`` and script token ``sandbox-script-token-<n>``.
"""

from __future__ import annotations

import random
from typing import List, Optional, Sequence

from .models import Environment, Pipeline, Repository, Step
from .util import HOUR, MINUTE, SECOND, new_uuid

ENVIRONMENTS = ("Test", "Staging", "Production")
RESULTS = ("SUCCESSFUL", "FAILED", "STOPPED", "ERROR", "EXPIRED")
STAGES = ("RUNNING", "PAUSED", "HALTED")
STEP_PLANS = (("Build and test",), ("Build", "Test"), ("Build and test", "Deploy to staging"),
              ("Build", "Test", "Deploy to staging", "Deploy to production"))
IMAGES = ("atlassian/default-image:4", "python:3.12", "node:20", "golang:1.22", "eclipse-temurin:21")
CUSTOM = ("deploy-hotfix", "nightly-e2e", "rotate-keys")
MAX_PER_REPOSITORY = 300
DIGITS = (5, 6, 6, 6, 7, 8, 9, 9)


# ------------------------------------------------------------------ building
def add_pipelines(ws, seed: int) -> None:
    """Give a freshly built workspace its environments and pipelines (see the module docstring).

    The repository without commits has no environments and no pipelines; the least busy repository
    with commits but no deployment (else the least deployed one) has Pipelines turned off; with four or
    more repositories with commits, the smallest other one has Pipelines on but never ran one. About
    one pipeline per deployment plus two per repository are spread over the rest (by commits, at most
    ``MAX_PER_REPOSITORY`` each); the busiest of them holds one PENDING, one RUNNING, one HALTED and one
    PAUSED pipeline, a custom pipeline with variables, an instantly failed one and every result.
    """
    rng = random.Random(f"{seed}-pipelines")
    live = [r for r in ws.repositories if len(r.graph)]
    for repo in ws.repositories:
        repo.environment_models = _environments(rng, repo) if len(repo.graph) or repo.deployments else []
    if not live:
        return
    off = min(live, key=lambda r: (len(r.deployments), len(r.graph), r.slug))
    off.pipelines_enabled = False
    if not off.deployments:
        off.environment_models = []
    runs = [r for r in live if r is not off]
    if len(live) >= 4:
        runs.remove(min(runs, key=lambda r: (len(r.graph), r.slug)))
    if not runs:
        return
    total = sum(len(r.deployments) for r in ws.repositories) + 2 * len(ws.repositories)
    weight = sum(len(r.graph) for r in runs)
    for repo in runs:
        count = min(MAX_PER_REPOSITORY, max(1, round(total * len(repo.graph) / weight)))
        _history(rng, ws, repo, count)
    _showcase(rng, ws, max(runs, key=lambda r: (len(r.pipelines), r.slug)))


def _environments(rng: random.Random, repo: Repository) -> List[Environment]:
    """Test, Staging, Production on the uuids deployments already use (``Repository.environments``)."""
    return [Environment(uuid=uuid, name=ENVIRONMENTS[rank % 3], rank=rank, hidden=rank == 0 and rng.random() < 0.3,
                        admin_only=rank == 2 and rng.random() < 0.5, deployment_gate_enabled=rank == 2 and rng.random() < 0.2,
                        environment_lock_enabled=rng.random() < 0.8)
            for rank, uuid in enumerate(repo.environments)]


def _history(rng: random.Random, ws, repo: Repository, count: int) -> None:
    """``count`` pipelines spread over the repository's life, all COMPLETED (a RUNNING newest one now and then)."""
    start, end = repo.created_us + HOUR, ws.now_us - 2 * HOUR
    times = sorted(rng.randrange(start, max(start + 1, end)) for _ in range(count))
    successful = False
    for t in times:
        p = new_pipeline(rng, ws, repo, t, custom=rng.random() < 0.04)
        result = rng.choices(RESULTS, (80, 12, 5, 2, 1))[0]
        complete(rng, p, t, result, fail_at=rng.randrange(len(p.steps)))
        if result == "SUCCESSFUL" and not successful:
            p.first_successful = successful = True
    if rng.random() < 0.3:
        running(rng, new_pipeline(rng, ws, repo, ws.now_us - rng.randrange(20, 40) * MINUTE), 1)


def _showcase(rng: random.Random, ws, repo: Repository) -> None:
    """Make sure one repository shows every state and quirk a consumer must handle."""
    present = {p.result for r in ws.repositories for p in r.pipelines}
    done = [p for p in repo.pipelines if p.state == "COMPLETED"]
    for result, p in zip([r for r in RESULTS if r not in present], done[2:]):
        p.steps = [_step(rng, ws, p, s.name, s.manual) for s in p.steps]
        complete(rng, p, p.created_us, result, fail_at=0)
    instant = new_pipeline(rng, ws, repo, ws.now_us - 30 * HOUR, trigger="PUSH")
    instant.digits = 9
    complete(rng, instant, instant.created_us, "FAILED", fail_at=None)
    instant.completed_us, instant.completed_ns = instant.created_us - rng.randint(3, 40), rng.randrange(1000)
    custom = new_pipeline(rng, ws, repo, ws.now_us - 26 * HOUR, custom=True)
    complete(rng, custom, custom.created_us, "SUCCESSFUL")
    halt(rng, new_pipeline(rng, ws, repo, ws.now_us - 20 * HOUR, manual=True), "HALTED")
    halt(rng, new_pipeline(rng, ws, repo, ws.now_us - 3 * HOUR, manual=True), "PAUSED")
    running(rng, new_pipeline(rng, ws, repo, ws.now_us - 25 * MINUTE), 1)
    new_pipeline(rng, ws, repo, ws.now_us - 2 * MINUTE).steps[0].state = "READY"  # PENDING
    repo.pipelines.sort(key=lambda p: (p.created_us, p.created_ns))
    for number, p in enumerate(repo.pipelines, start=1):
        p.build_number = number


# ------------------------------------------------------------------ one pipeline
def new_pipeline(rng: random.Random, ws, repo: Repository, created_us: int, custom: bool = False,
                 manual: bool = False, trigger: Optional[str] = None) -> Pipeline:
    """A PENDING pipeline created at ``created_us`` (newest of the repository), its steps PENDING.

    ``custom``: a custom pipeline run by hand with variables; ``manual``: its last step waits for a click.
    """
    graph = repo.graph
    repo.pipeline_number += 1
    users = [m.account for m in ws.members if m.account.type == "user"] or [ws.owner]
    p = Pipeline(uuid=new_uuid(rng), build_number=repo.pipeline_number, creator=rng.choice(users),
                 created_us=created_us, created_ns=rng.randrange(1000), completed_ns=rng.randrange(1000),
                 digits=rng.choice(DIGITS), ref_name=repo.main_name or "main",
                 commit_hash=graph.commits[rng.randrange(len(graph))].hash if len(graph) else "0" * 40)
    kind = rng.random()
    if custom:
        p.trigger, p.selector, p.custom_name = "MANUAL", "custom", rng.choice(CUSTOM)
        p.variables = [(key, _secret(ws, "sandbox-clear-secret")) for key in ("RELEASE_TOKEN", "TARGET_ENV")]
    elif kind < 0.10 and repo.pull_requests:
        p.target, p.pr = "pullrequest", rng.choice(repo.pull_requests)
        p.commit_hash, p.trigger = p.pr.source_hash, "PUSH"
    elif kind < 0.17:
        p.target, p.selector, p.trigger = "commit", "default", "MANUAL"
    else:
        branches = sorted(graph.branches) or [p.ref_name]
        p.ref_name = p.ref_name if rng.random() < 0.7 else rng.choice(branches)
        p.trigger = rng.choices(("PUSH", "MANUAL", "SCHEDULED"), (85, 10, 5))[0]
        p.selector = "default" if p.trigger == "SCHEDULED" else rng.choice(("branches", "default"))
    p.trigger = trigger or p.trigger
    p.run_number = 2 if rng.random() < 0.04 else 1
    plan = STEP_PLANS[-1] if manual else rng.choice(STEP_PLANS)
    p.steps = [_step(rng, ws, p, name, manual=name == "Deploy to production") for name in plan]
    repo.pipelines.append(p)
    return p


def _secret(ws, prefix: str) -> str:
    ws.secret_serial += 1
    return f"{prefix}-{ws.secret_serial}"


def _step(rng: random.Random, ws, p: Pipeline, name: str, manual: bool) -> Step:
    ws.secret_serial += 1
    return Step(uuid=new_uuid(rng), name="" if rng.random() < 0.03 else name, manual=manual, run_number=p.run_number,
                max_time=rng.choice((120, 120, 60, 30)), image=rng.choice(IMAGES), secret=ws.secret_serial)


def _run(rng: random.Random, s: Step, t: int, result: str) -> int:
    """Run (or finish) one step from ``t``; returns when it ended."""
    if s.started_us is None:
        s.started_us = t + rng.randrange(2, 15) * SECOND + rng.randrange(1, SECOND)
    s.completed_us = max(t, s.started_us) + rng.randrange(5, 300) * SECOND + rng.randrange(1, SECOND)
    s.state, s.result = "COMPLETED", result
    return s.completed_us


def _waiting(p: Pipeline) -> List[Step]:
    return [s for s in p.steps if s.state != "COMPLETED"]


def play(rng: random.Random, p: Pipeline, t: int, count: int) -> int:
    """Run the next ``count`` waiting steps successfully from ``t``; returns when the last one ended."""
    for s in _waiting(p)[:count]:
        t = _run(rng, s, t, "SUCCESSFUL")
    return t


def complete(rng: random.Random, p: Pipeline, t: int, result: str = "SUCCESSFUL", fail_at: Optional[int] = 0) -> int:
    """Finish the pipeline from ``t`` with ``result``; returns its ``completed_on``.

    SUCCESSFUL runs every waiting step; FAILED / STOPPED / ERROR run ``fail_at`` more steps, end the next
    one with that result and leave the rest NOT_RUN (``fail_at`` None: nothing runs); EXPIRED leaves
    every waiting step NOT_RUN.
    """
    if result not in RESULTS:
        raise ValueError(f"result must be one of {', '.join(RESULTS)}")
    waiting = _waiting(p)
    if result == "SUCCESSFUL":
        t = play(rng, p, t, len(waiting))
    elif result != "EXPIRED" and fail_at is not None:
        fail_at = min(fail_at, len(waiting) - 1)
        t = play(rng, p, t, fail_at)
        t = _run(rng, waiting[fail_at], t, result)
    for s in _waiting(p):
        s.state, s.result, s.started_us, s.completed_us = "COMPLETED", "NOT_RUN", None, None
    p.state, p.stage, p.result = "COMPLETED", None, result
    p.expired = result == "EXPIRED"
    p.terminator = p.creator if result == "STOPPED" else None
    p.completed_us = t + rng.randrange(1, 3 * SECOND)
    return p.completed_us


def running(rng: random.Random, p: Pipeline, done: int) -> int:
    """``done`` steps ran (at most all but one), the next one is running: IN_PROGRESS / RUNNING; returns
    when it started."""
    t = play(rng, p, p.created_us, min(done, len(_waiting(p)) - 1))
    step = _waiting(p)[0]
    step.state, step.started_us = "IN_PROGRESS", t + rng.randrange(2, 15) * SECOND + rng.randrange(1, SECOND)
    p.state, p.stage = "IN_PROGRESS", "RUNNING"
    return step.started_us


def halt(rng: random.Random, p: Pipeline, stage: str) -> int:
    """Run the steps before the first manual one, which then waits: IN_PROGRESS / ``stage`` (HALTED or PAUSED)."""
    manual = next(i for i, s in enumerate(p.steps) if s.manual)
    t = play(rng, p, p.created_us, manual)
    p.state, p.stage = "IN_PROGRESS", stage
    return t


def resume(rng: random.Random, p: Pipeline, t: int) -> int:
    """A HALTED / PAUSED pipeline goes on: its waiting step starts at ``t`` (RUNNING); returns when."""
    if p.state != "IN_PROGRESS" or p.stage not in ("HALTED", "PAUSED"):
        raise ValueError(f"pipeline {p.uuid} is not HALTED or PAUSED")
    step = _waiting(p)[0]
    step.state, step.started_us = "IN_PROGRESS", t + rng.randrange(1, SECOND)
    p.stage = "RUNNING"
    return step.started_us


def in_states(pipelines: Sequence[Pipeline], state: str, stage: Optional[str] = None) -> List[Pipeline]:
    """The pipelines in ``state`` (and ``stage``)."""
    return [p for p in pipelines if p.state == state and (stage is None or p.stage == stage)]
