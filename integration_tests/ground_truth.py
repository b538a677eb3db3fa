"""Primary keys of the connector's records and of the sandbox's ground truth, for comparing them.

``truth_keys`` covers every stream (``pipeline_truth_keys`` the pipeline streams: environments, pipelines,
pipeline_steps); ``pipeline_truth`` and ``review_truth`` give the pipeline and code-review streams' objects
by those keys.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Set, Tuple

from integration_tests import connector_cli as cli
from integration_tests.sandbox import reviews
from integration_tests.sandbox.shapes import rebase
from integration_tests.sandbox.util import parse_iso
from source_bitbucket.dates import format_datetime, parse_datetime
from source_bitbucket.streams import STREAM_CLASSES
from source_bitbucket.streams.pull_request_activity import activity_date, activity_id, activity_type, actor_uuid


def key_fields(stream: str) -> List[str]:
    """The top-level fields of a stream's primary key, as its class in the registry declares it."""
    key = next(c for c in STREAM_CLASSES if c.name == stream).primary_key
    return [key] if isinstance(key, str) else list(key)


def connector_key(stream: str, record: Mapping[str, Any]) -> Tuple:
    """A record's primary key as the connector declares it."""
    return tuple(record[field] for field in key_fields(stream))


def keys(result: cli.SyncResult, stream: str) -> List[Tuple]:
    """The primary keys of one stream's records in a run, in emission order (duplicates kept)."""
    return [connector_key(stream, r) for r in result.records.get(stream, [])]


def truth_keys(workspace) -> Dict[str, Set[Tuple]]:
    """Every stream's primary keys, computed from the sandbox workspace's current data."""
    with workspace.lock:
        out: Dict[str, Set[Tuple]] = {s: set() for s in cli.STREAMS}
        for repo in workspace.repositories:
            out["repositories"].add((repo.uuid,))
            out["pull_requests"] |= {(repo.uuid, pr.id) for pr in repo.pull_requests}
            _, order = repo.graph.listing(repo.graph.heads(), ())
            out["commits"] |= {(repo.uuid, repo.graph.commits[i].hash) for i in order}
            out["deployments"] |= {(d.uuid,) for d in repo.deployments}
        out["workspace_users"] = {(m.account.uuid,) for m in workspace.members}
    out.update(pipeline_truth_keys(workspace))
    out.update({s: set(objs) for s, objs in review_truth(workspace).items()})
    return out


PIPELINE_STREAMS = ("environments", "pipelines", "pipeline_steps")


def pipeline_truth(workspace, api_url=None) -> Dict[str, Dict[Tuple, Dict[str, Any]]]:
    """The API objects of the pipeline streams, keyed like ``pipeline_truth_keys``: environments by
    ``(repository uuid, environment uuid)``, pipelines by ``(repository uuid, pipeline uuid)``, steps by
    ``(repository uuid, pipeline uuid, step uuid)``; whole objects as the API renders them (state,
    ``completed_on`` when COMPLETED, step dates, and the secrets: variables, image credentials, commands).

    A repository with Pipelines off has no pipelines (its environments are listed). ``api_url``: hrefs on
    that base (e.g. ``server.api_url``), else on ``https://api.bitbucket.org/2.0``.
    """
    with workspace.lock:
        out: Dict[str, Dict[Tuple, Dict[str, Any]]] = {s: {} for s in PIPELINE_STREAMS}
        for repo in workspace.repositories:
            for env in repo.environment_models:
                out["environments"][(repo.uuid, env.uuid)] = workspace.environment_api(env)
            if not repo.pipelines_enabled:
                continue
            for pipeline in repo.pipelines:
                out["pipelines"][(repo.uuid, pipeline.uuid)] = workspace.pipeline_api(repo, pipeline)
                for step in pipeline.steps:
                    out["pipeline_steps"][(repo.uuid, pipeline.uuid, step.uuid)] = workspace.step_api(repo, pipeline, step)
    if api_url is not None:
        out = {s: {k: json.loads(rebase(json.dumps(v).encode(), api_url)) for k, v in objs.items()}
               for s, objs in out.items()}
    return out


def pipeline_truth_keys(workspace) -> Dict[str, Set[Tuple]]:
    """The keys of ``pipeline_truth``: ``{"environments": {(repo_uuid, env_uuid)}, "pipelines":
    {(repo_uuid, pipeline_uuid)}, "pipeline_steps": {(repo_uuid, pipeline_uuid, step_uuid)}}``."""
    with workspace.lock:
        out: Dict[str, Set[Tuple]] = {s: set() for s in PIPELINE_STREAMS}
        for repo in workspace.repositories:
            out["environments"] |= {(repo.uuid, env.uuid) for env in repo.environment_models}
            if repo.pipelines_enabled:
                out["pipelines"] |= {(repo.uuid, p.uuid) for p in repo.pipelines}
                out["pipeline_steps"] |= {(repo.uuid, p.uuid, s.uuid) for p in repo.pipelines for s in p.steps}
        return out


REVIEW_STREAMS = ("pull_request_activity", "pull_request_comments", "pull_request_commits", "pull_request_diffstat",
                  "branches", "tags", "projects")


def review_truth(workspace, api_url=None) -> Dict[str, Dict[Tuple, Dict[str, Any]]]:
    """The API objects of the code-review streams, keyed as the connector keys them:
    ``pull_request_activity`` by ``(repository uuid, pull request id, activity_id)`` (the connector's
    synthetic key, computed by its own function), comments by ``(repository uuid, pull request id,
    comment id)`` (published ones of pull requests with ``comment_count`` > 0: the connector reads no
    other), pull request commits by ``(repository uuid, pull request id, hash)`` (none once the source
    branch is gone, none for a deleted fork), diffstat files by ``(repository uuid, pull request id,
    path)`` (none for the pull requests whose diffstat answers 400 or 555), branches and tags by
    ``(repository uuid, name)``, projects by ``(uuid,)``; hrefs on ``api_url`` when given."""
    out: Dict[str, Dict[Tuple, Dict[str, Any]]] = {s: {} for s in REVIEW_STREAMS}
    with workspace.lock:
        for repo in workspace.repositories:
            for entry in reviews.activity(workspace, repo):
                kind = activity_type(entry)
                lifted = {**entry, "pull_request_id": entry["pull_request"]["id"], "activity_type": kind,
                          "activity_date": format_datetime(parse_datetime(activity_date(entry)))}
                lifted["actor_uuid"] = actor_uuid(entry, kind)
                out["pull_request_activity"][(repo.uuid, lifted["pull_request_id"], activity_id(lifted))] = entry
            for pr in repo.pull_requests:
                if pr.comment_count > 0:
                    for c in reviews.published(pr):
                        out["pull_request_comments"][(repo.uuid, pr.id, c.id)] = reviews.comment_api(workspace, repo, pr, c)
                if (repo.uuid, pr.id) not in workspace.deleted_fork_pull_requests:
                    for idx in reviews.pull_request_commits(repo, pr):
                        commit = workspace.commit_api(repo, idx)
                        out["pull_request_commits"][(repo.uuid, pr.id, commit["hash"])] = commit
                if (repo.uuid, pr.id) not in workspace.diffstat_errors:
                    for f in reviews.diffstat(workspace, repo, reviews.revision_spec(pr)):
                        path = (f["new"] or f["old"])["path"]
                        out["pull_request_diffstat"][(repo.uuid, pr.id, path)] = f
            for name in repo.graph.branches:
                out["branches"][(repo.uuid, name)] = reviews.branch_api(workspace, repo, name)
            for tag in repo.tags:
                out["tags"][(repo.uuid, tag.name)] = reviews.tag_api(workspace, repo, tag)
        for project in workspace.projects:
            out["projects"][(project.uuid,)] = reviews.project_api(workspace, project)
    if api_url is not None:
        out = {s: {k: json.loads(rebase(json.dumps(v).encode(), api_url)) for k, v in objs.items()}
               for s, objs in out.items()}
    return out


# The code-review streams' per-repository cursor fields (projects: a stream-wide ``updated_on``).
REVIEW_CURSORS = {"pull_request_activity": "activity_date", "pull_request_comments": "pull_request_updated_on",
                  "pull_request_commits": "pull_request_updated_on", "pull_request_diffstat": "pull_request_updated_on",
                  "branches": "repository_updated_on", "tags": "repository_updated_on"}
# Streams whose destination keeps rows the API stops listing (deleted refs, the commits of a pull request
# whose branch is gone, an activity entry the feed drops): what was read plus what is read covers the truth.
KEEPS_UNLISTED = ("pull_request_activity", "pull_request_commits", "branches", "tags")


def covers(stream: str, emitted: Set[Tuple], truth: Set[Tuple]) -> bool:
    """Whether the keys emitted over some syncs are the truth's (a superset, for ``KEEPS_UNLISTED``)."""
    return emitted >= truth if stream in KEEPS_UNLISTED else emitted == truth


def review_cursor_values(workspace) -> Dict[str, Dict[Tuple, int]]:
    """``{stream: {key: cursor value in epoch µs}}`` for the code-review streams, keys as ``review_truth``:
    an activity entry's date, a pull-request-scoped row's pull request ``updated_on``, a ref's repository
    ``updated_on``, a project's ``updated_on``."""
    truth = review_truth(workspace)
    with workspace.lock:
        repos = {r.uuid: r for r in workspace.repositories}
        prs = {(r.uuid, pr.id): pr.updated_us for r in workspace.repositories for pr in r.pull_requests}
        projects = {(p.uuid,): p.updated_us for p in workspace.projects}
    out: Dict[str, Dict[Tuple, int]] = {}
    for stream, objs in truth.items():
        if stream == "pull_request_activity":
            out[stream] = {k: parse_iso(activity_date(v)) for k, v in objs.items()}
        elif stream in ("branches", "tags"):
            out[stream] = {k: repos[k[0]].updated_us for k in objs}
        elif stream == "projects":
            out[stream] = {k: projects[k] for k in objs}
        else:
            out[stream] = {k: prs[k[:2]] for k in objs}
    return out
