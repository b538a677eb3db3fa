"""Primary keys of the connector's records and of the sandbox's ground truth, for comparing them."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Set, Tuple

from integration_tests import connector_cli as cli
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
        return out
