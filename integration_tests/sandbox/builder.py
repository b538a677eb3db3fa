"""Deterministic recipe behind ``generate_workspace``.

Per repository, a pull-request plan is laid on a timeline together with direct commits to main and
deployments, then replayed in time order on a real commit DAG: feature branches fork from the head
of main, get commits, are merged with merge commits (or squash-merged), declined, superseded or left
open. Exactly ``commits`` commits end up reachable from branches, whatever the mix.
"""

from __future__ import annotations

import random
from typing import List

from .data import Workspace
from .models import Account, Member, Project, PullRequest, Repository, new_deployment
from .people import add_participants
from .pipelines import add_pipelines
from .reviews import add_reviews
from .util import DAY, HOUR, MINUTE, SECOND, deploy_micros, new_account_id, new_hash, new_uuid, parse_iso

SLUGS = ["api-gateway", "billing-service", "web-frontend", "mobile-app", "data-pipeline", "infra-terraform",
         "auth-service", "notification-worker", "search-indexer", "docs-site", "analytics-etl", "payments-core"]
LANGUAGES = ["python", "python", "javascript", "typescript", "go", "java", "kotlin", "", ""]
VERBS = ["Fix", "Add", "Update", "Refactor", "Remove", "Improve", "Bump", "Document", "Speed up", "Handle"]
THINGS = ["retry logic", "payment client", "login flow", "CI pipeline", "README", "dependency versions",
          "error handling", "cache layer", "API pagination", "feature flags", "metrics export",
          "database migration", "unit tests", "logging", "config loader", "rate limiting"]
AREAS = ["", "", "in billing", "for webhooks", "in the scheduler", "on startup", "for large accounts"]
RAW_ONLY = ["Build Bot <build-bot@example.com>", "Former Contractor <contractor@example.org>",
            "root <root@localhost>"]
COST = {"merge": 2, "squash": 1, "branch": 1, "kept": 1, "deleted": 0, "bare": 0, "ff": 0}
DOWNGRADES = [("merge", "squash"), ("kept", "deleted"), ("branch", "bare"), ("squash", "ff")]


def new_account(rng: random.Random, n: int, created_us: int, type_: str = "user") -> Account:
    """Account number ``n`` ("Dev User n", devn@example.com); app users get a token-like name."""
    if type_ == "app_user":
        return Account(new_uuid(rng), new_account_id(rng), "Sandbox CI token", None, f"ci-token-{n}@example.com",
                       created_us, "app_user", "workspace_access_token")
    return Account(new_uuid(rng), new_account_id(rng), f"Dev User {n}", f"Dev User {n}", f"dev{n}@example.com", created_us)


def split(rng: random.Random, total: int, weights: List[float], minimum: int = 0) -> List[int]:
    """Split ``total`` over ``weights`` (largest remainder), giving each at least ``minimum`` if possible."""
    if not weights:
        return []
    base = [minimum if total >= minimum * len(weights) else 0 for _ in weights]
    rest = total - sum(base)
    wsum = sum(weights) or 1.0
    raw = [rest * w / wsum for w in weights]
    counts = [int(x) for x in raw]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - raw[i], rng.random()))
    for i in order[: rest - sum(counts)]:
        counts[i] += 1
    return [b + c for b, c in zip(base, counts)]


def _title(rng: random.Random) -> str:
    return f"{rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(AREAS)}".strip()


def build(seed: int, repositories: int, pull_requests: int, commits: int, deployments: int, members: int,
          slug: str, now: str) -> Workspace:
    """Generate the whole workspace (see ``data.generate_workspace``)."""
    rng = random.Random(seed)
    now_us = parse_iso(now)
    ws = Workspace(slug, seed, now_us)
    ws.uuid, ws.name, ws.created_us = new_uuid(rng), slug.replace("-", " ").title(), now_us - 1100 * DAY
    for n in range(1, max(members, 1) + 1):
        kind = "app_user" if n == members and members >= 3 else "user"
        acc = new_account(rng, n, ws.created_us + rng.randrange(0, 300 * DAY), kind)
        member = Member(acc)
        if rng.random() < 0.7:
            member.added_us = acc.created_us + rng.randrange(DAY, 200 * DAY)
            if rng.random() < 0.5:
                member.last_accessed_us = rng.randrange(member.added_us, now_us - HOUR)
        ws.members.append(member)
    ws.owner = ws.members[0].account
    users = [m.account for m in ws.members if m.account.type == "user"]
    ws.authors = [(f"{a.display_name} <{a.email}>", a) for a in users]
    ws.authors += [(raw, None) for raw in RAW_ONLY] + [(f"{a.display_name} <{a.email}>", None) for a in users[:2]]
    projects = [Project(key, new_uuid(rng), name) for key, name in (("PLAT", "Platform"), ("WEB", "Web"), ("DATA", "Data"))]
    ws.projects = projects

    empty_at = rng.randrange(repositories) if repositories >= 2 else -1
    weights = [0.0 if i == empty_at else rng.lognormvariate(0, 0.9) for i in range(repositories)]
    live = [i for i in range(repositories) if i != empty_at]
    c_split = split(rng, commits, [weights[i] for i in live], minimum=1)
    c_by = {i: c for i, c in zip(live, c_split)}
    has = [i for i in live if c_by[i] > 0]
    p_by = dict(zip(has, split(rng, pull_requests, [weights[i] * rng.uniform(0.7, 1.3) for i in has])))
    d_by = dict(zip(has, split(rng, deployments, [weights[i] * rng.uniform(0.5, 1.5) for i in has])))
    states = _pr_states(rng, [p_by.get(i, 0) for i in range(repositories)])
    for i in range(repositories):
        repo = _new_repo(rng, ws, i, projects)
        ws.repositories.append(repo)
        _history(ws, rng, repo, c_by.get(i, 0), states[i], d_by.get(i, 0))
    deployed = [r for r in ws.repositories if r.deployments]
    for repo in deployed:  # the newest deployment is still running in some repositories, always in the busiest
        if repo is max(deployed, key=lambda r: len(r.deployments)) or rng.random() < 0.3:
            dep = repo.deployments[-1]
            dep.state, dep.status, dep.completed_us = "IN_PROGRESS", None, None
            dep.started_us = dep.started_us or dep.created_us + rng.randrange(5, 60) * SECOND
    add_participants(ws, seed)
    add_pipelines(ws, seed)
    for repo in ws.repositories:
        for pr in repo.pull_requests:
            if pr.state != "OPEN":
                pr.closed_us = pr.updated_us
    add_reviews(ws, seed)
    return ws


def _pr_states(rng: random.Random, counts: List[int]) -> List[List[str]]:
    """Mostly MERGED, some OPEN / DECLINED, and 1-2 SUPERSEDED in the busiest repositories."""
    out = [[rng.choices(("MERGED", "OPEN", "DECLINED"), (72, 15, 13))[0] for _ in range(n)] for n in counts]
    total = sum(counts)
    superseded = 0 if total == 0 else 1 if total < 40 else 2
    for i in sorted(range(len(counts)), key=lambda i: -counts[i])[:superseded]:
        if out[i]:
            out[i][rng.randrange(len(out[i]))] = "SUPERSEDED"
    return out


def _new_repo(rng: random.Random, ws: Workspace, i: int, projects) -> Repository:
    slug = SLUGS[i % len(SLUGS)] + (f"-{i // len(SLUGS) + 1}" if i >= len(SLUGS) else "")
    name = slug.replace("-", " ").title() if rng.random() < 0.3 else slug
    return Repository(
        slug=slug, name=name, uuid=new_uuid(rng), language=rng.choice(LANGUAGES), is_private=rng.random() < 0.85,
        size=rng.randint(40_000, 90_000_000), has_issues=rng.random() < 0.3, has_wiki=rng.random() < 0.1,
        fork_policy=rng.choice(("no_public_forks", "no_public_forks", "allow_forks", "no_forks")),
        description=rng.choice(("", "", f"The {slug.replace('-', ' ')} of the Acme platform.")),
        project=rng.choice(projects), main_name=rng.choice(("main", "main", "master")),
        environments=[new_uuid(rng) for _ in range(3)], created_us=0, updated_us=0,
    )


class _Plan:
    """One pull request to be replayed on the timeline."""

    def __init__(self, state: str, kind: str):
        self.state, self.kind, self.k = state, kind, 1 if COST[kind] else 0
        self.tip = None
        self.pr = None


def _plans(rng: random.Random, states: List[str], n_commits: int):
    """Choose how each PR touches the DAG so that exactly ``n_commits`` commits are reachable."""
    plans = []
    for state in states:
        if state == "MERGED":
            kind = "merge" if rng.random() < 0.8 else "squash"
        else:
            kind = "branch" if state == "OPEN" else rng.choice(("kept", "deleted"))
        plans.append(_Plan(state, kind))
    total = 1 + sum(COST[p.kind] for p in plans)
    for old, new in DOWNGRADES:
        for p in plans:
            if total <= n_commits:
                break
            if p.kind == old:
                total -= COST[old] - COST[new]
                p.kind, p.k = new, 1 if COST[new] else 0
    leftover = n_commits - total
    eligible = [p for p in plans if p.kind in ("merge", "branch", "kept")]
    direct = leftover if not eligible else int(leftover * rng.uniform(0.25, 0.45))
    for _ in range(leftover - direct):
        rng.choice(eligible).k += 1
    return plans, direct


def _history(ws: Workspace, rng: random.Random, repo: Repository, n_commits: int, states: List[str], n_deploys: int):
    """Lay out and replay one repository's history (nothing at all when ``n_commits`` is 0)."""
    end = ws.now_us - rng.randrange(HOUR, 48 * HOUR)
    start = ws.now_us - rng.randrange(200 * DAY, 360 * DAY)
    repo.created_us = start - rng.randrange(HOUR, 5 * DAY)
    repo.updated_us = repo.created_us + rng.randrange(MINUTE, HOUR)
    if n_commits <= 0:
        repo.main_name, repo.environments = None, repo.environments[:1]
        return
    plans, direct = _plans(rng, states, n_commits)

    def after(t: int, lo: int, hi: int) -> int:
        return t + max(1, min(rng.randrange(lo, hi), (end - t) // 2))

    events = [(start, 0, "root", None)]
    events += [(rng.randrange(start + SECOND, end), 1, "main", None) for _ in range(direct)]
    for p in plans:
        t = rng.randrange(start + SECOND, end)
        events.append((t, 2, "fork", p))
        extra = rng.randint(1, 3) if p.kind in ("squash", "deleted") else 0
        for _ in range(p.k + extra):
            t = after(t, 10 * MINUTE, DAY)
            events.append((t, 3, "commit", p))
        t = after(t, MINUTE, 2 * HOUR)
        events.append((t, 4, "create", p))
        if p.state != "OPEN":
            events.append((after(t, 10 * MINUTE, 5 * DAY), 5, "close", p))
    events += [(rng.randrange(start + (end - start) // 10, end), 6, "deploy", None) for _ in range(n_deploys)]
    events.sort(key=lambda e: (e[0], e[1]))
    _replay(ws, rng, repo, events, end)


def _replay(ws: Workspace, rng: random.Random, repo: Repository, events, end: int) -> None:
    graph, users = repo.graph, [a for _, a in ws.authors if a is not None]
    head = None

    def add(parents, t, message, author=None):
        raw, acc = author or rng.choice(ws.authors)
        return graph.add(new_hash(rng), parents, t - t % SECOND, raw, acc, message).idx

    for t, _, action, p in events:
        if action == "root":
            head = add((), t, "Initial commit\n")
        elif action == "main":
            head = add((head,), t, f"{_title(rng)}\n")
        elif action == "fork":
            repo.branch_serial += 1
            p.tip, p.ticket = head, f"SBX-{100 + repo.branch_serial}"
            p.author = rng.choice(users)
            p.title = _title(rng)
            p.branch = f"feature/{p.ticket}-{p.title.lower().replace(' ', '-')}"
        elif action == "commit":
            raw = f"{p.author.display_name} <{p.author.email}>"
            p.tip = add((p.tip,), t, f"{p.ticket} {_title(rng).lower()}\n", (raw, p.author if rng.random() < 0.9 else None))
        elif action == "create":
            desc = "" if rng.random() < 0.3 else "\n".join(f"* {_title(rng).lower()}" for _ in range(rng.randint(1, 4)))
            p.pr = PullRequest(
                id=len(repo.pull_requests) + 1, title=f"{p.ticket} {p.title}", description=desc, author=p.author,
                created_us=t, updated_us=t + rng.randrange(SECOND), source_branch=p.branch,
                source_hash=graph.commits[p.tip].hash, dest_branch=repo.main_name, dest_hash=graph.commits[head].hash,
                comment_count=rng.choice((0, 0, 0, 1, 2, 3, 5, 8)), task_count=rng.choice((0, 0, 0, 0, 1, 2)),
                close_source_branch=rng.random() < 0.7,
            )
            repo.pull_requests.append(p.pr)
            if p.state == "OPEN" and end > t and rng.random() < 0.5:
                p.pr.updated_us = rng.randrange(t, end)
        elif action == "close":
            pr = p.pr
            pr.state, pr.updated_us = p.state, t + rng.randrange(SECOND)
            pr.closed_by = rng.choice(users) if p.state == "MERGED" else rng.choice((p.author, ws.owner))
            if p.kind == "merge":
                head = add((head, p.tip), t, f"Merged in {p.branch} (pull request #{pr.id})\n\n{pr.title}\n")
            elif p.kind == "squash":
                head = add((head,), t, f"{pr.title} (pull request #{pr.id})\n")
            if p.state == "MERGED":
                pr.merge_hash = graph.commits[head].hash
            elif rng.random() < 0.4:
                pr.reason = rng.choice(("Not needed anymore", "Superseded by another approach", "Stale"))
        else:
            _deploy(rng, repo, graph.commits[head].hash, t)
    refs = {repo.main_name: head}
    for p in (plan for _, _, action, plan in events if action == "create"):
        keep = p.kind in ("branch", "bare", "kept") or (p.kind == "merge" and not p.pr.close_source_branch)
        if keep:
            refs[p.branch] = p.tip
    graph.branches.update(refs)
    last = max(graph.commits[i].date_us for i in graph.heads())
    repo.updated_us = max(repo.updated_us, last + rng.randrange(SECOND, MINUTE))


def _deploy(rng: random.Random, repo: Repository, commit_hash: str, t: int) -> None:
    state = "UNDEPLOYED" if rng.random() < 0.08 else "COMPLETED"
    created = t - t % SECOND + deploy_micros(rng)
    dep = new_deployment(rng, repo, commit_hash, created, state)
    if state == "COMPLETED":
        dep.started_us = created + rng.randrange(5, 60) * SECOND
        dep.completed_us = dep.started_us + rng.randrange(20, 900) * SECOND
        dep.started_us += deploy_micros(rng) - dep.started_us % SECOND
        dep.completed_us += deploy_micros(rng) - dep.completed_us % SECOND
        dep.status = rng.choices(("SUCCESSFUL", "FAILED", "STOPPED"), (80, 15, 5))[0]
    repo.deployments.append(dep)
