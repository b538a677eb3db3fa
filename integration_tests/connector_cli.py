"""Run the connector's command line (``python main.py ...``) as a subprocess and collect its output.

Used by the end-to-end tests, the fault matrix, the demo and the benchmark: the connector is
exercised exactly as Airbyte runs it (Airbyte protocol messages on stdout, exit code).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple


PROJECT_ROOT = Path(__file__).resolve().parent.parent
CATALOG = PROJECT_ROOT / "integration_tests" / "configured_catalog.json"
def stream_names() -> Tuple[str, ...]:
    """The connector's streams, in the registry's order (imported on first use, so that the
    benchmark's plain loop, which imports this module, stays free of the connector and the CDK)."""
    from source_bitbucket.streams import STREAM_CLASSES

    return tuple(stream.name for stream in STREAM_CLASSES)


def __getattr__(name: str) -> Any:
    """``STREAMS``: ``stream_names()``, computed on first access."""
    if name == "STREAMS":
        return stream_names()
    raise AttributeError(name)


@dataclass
class SyncResult:
    """What one connector run printed, sorted by kind."""

    returncode: int
    records: Dict[str, List[Mapping[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    states: List[Mapping[str, Any]] = field(default_factory=list)
    traces: List[Mapping[str, Any]] = field(default_factory=list)
    logs: List[Mapping[str, Any]] = field(default_factory=list)
    other: List[Mapping[str, Any]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    @property
    def errors(self) -> List[Mapping[str, Any]]:
        return [t["error"] for t in self.traces if t.get("type") == "ERROR"]

    def final_state(self) -> List[Mapping[str, Any]]:
        """The last STATE of each stream, as a list to pass back with ``--state``."""
        latest: Dict[str, Mapping[str, Any]] = {}
        for state in self.states:
            latest[state["stream"]["stream_descriptor"]["name"]] = state
        return list(latest.values())

    def counts(self) -> Dict[str, int]:
        return {name: len(self.records.get(name, [])) for name in stream_names()}


def catalog(sync_modes: Optional[Mapping[str, str]] = None, streams: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The project's configured catalog limited to ``streams`` (default: all), with per-stream sync mode overrides."""
    full = json.loads(CATALOG.read_text())
    streams = stream_names() if streams is None else streams
    chosen = [s for s in full["streams"] if s["stream"]["name"] in streams]
    for configured in chosen:
        mode = (sync_modes or {}).get(configured["stream"]["name"])
        if mode:
            configured["sync_mode"] = mode
            configured["destination_sync_mode"] = "append_dedup" if mode == "incremental" else "overwrite"
    return {"streams": chosen}


def run(
    command: str,
    config: Mapping[str, Any],
    configured_catalog: Optional[Mapping[str, Any]] = None,
    state: Optional[List[Mapping[str, Any]]] = None,
    timeout: float = 300,
) -> SyncResult:
    """Run ``python main.py <command> --config ... [--catalog ...] [--state ...]`` and parse its stdout."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, str(PROJECT_ROOT / "main.py"), command, "--config", _write(tmp, "config.json", config)]
        if configured_catalog is not None:
            args += ["--catalog", _write(tmp, "catalog.json", configured_catalog)]
        if state is not None:
            args += ["--state", _write(tmp, "state.json", state)]
        completed = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT)
    return parse(completed.stdout, completed.returncode, completed.stderr)


def parse(stdout: str, returncode: int = 0, stderr: str = "") -> SyncResult:
    """Sort Airbyte protocol lines by message type."""
    result = SyncResult(returncode=returncode, stdout=stdout, stderr=stderr)
    for line in stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        kind = message.get("type")
        if kind == "RECORD":
            result.records[message["record"]["stream"]].append(message["record"]["data"])
        elif kind == "STATE":
            result.states.append(message["state"])
        elif kind == "TRACE":
            result.traces.append(message["trace"])
        elif kind == "LOG":
            result.logs.append(message["log"])
        else:
            result.other.append(message)
    return result


def _write(folder: str, name: str, content: Any) -> str:
    path = Path(folder) / name
    path.write_text(json.dumps(content))
    return str(path)
