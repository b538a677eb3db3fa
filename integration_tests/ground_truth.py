"""Primary keys of the connector's records and of the sandbox's ground truth, for comparing them.

``truth_keys`` covers every stream (``pipeline_truth_keys`` the pipeline streams: environments, pipelines,
pipeline_steps); ``pipeline_truth`` gives the pipeline streams' objects by those keys.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Set, Tuple

from integration_tests import connector_cli as cli
from integration_tests.sandbox.shapes import rebase
from source_bitbucket.streams import STREAM_CLASSES


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
