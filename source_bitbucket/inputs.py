"""Read and check the ``--config``, ``--state`` and ``--catalog`` files before anything is read.

The CDK turns a malformed file into a generic "Something went wrong" crash with a traceback (and
reads nothing, or, for a catalog naming an unknown stream, ends with exit 0). Here each problem is
an ``InputFileError``: an Airbyte ``config_error`` whose message names the option, the file, what
is wrong in it and what to do. ``run.py`` prints it as one TRACE message, without a traceback.

Accepted state (as the CDK's ``read_state``, plus the shapes it parses but silently drops):

* a JSON list (``[]`` or ``null``: no state) of ``{"type": "STREAM", "stream": {"stream_descriptor":
  {"name": ..., "namespace": ...}, "stream_state": {...} | null}}``; extra keys (``sourceStats``) are
  ignored;
* an entry with a ``stream`` but no ``type``: read as STREAM (the CDK would ignore it silently);
* ``{"type": "LEGACY", "data": {"<stream>": {...}, ...}}``: read as one STREAM entry per stream (the
  CDK would ignore it silently).

Refused: anything else, e.g. a JSON object instead of a list, a GLOBAL state (this connector keeps
one state per stream), an entry without a stream descriptor, a ``stream_state`` that is not an
object, or a whole ``{"type": "STATE", "state": ...}`` output line instead of its ``state``.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Mapping, MutableMapping, Optional

from airbyte_cdk.models import (
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    FailureType,
)
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

STATE_FIX = (
    "Fix it, or delete the file to re-sync every stream from start_date (or delete only the broken "
    "stream's entry, to re-sync just that stream)."
)
CATALOG_FIX = (
    "Write it from the output of 'discover' (a JSON object with a \"streams\" list of configured streams), "
    "or refresh the source schema in Airbyte."
)
STATE_SHAPE = (
    'a JSON list of state messages, e.g. [{"type": "STREAM", "stream": {"stream_descriptor": '
    '{"name": "commits"}, "stream_state": {...}}}]'
)
CONFIG_FIX = (
    'Write it as a JSON object, e.g. {"workspace": "acme", "email": "me@example.com", "api_token": "..."} '
    "(the fields are listed by 'spec' and in the README)."
)
SYNC_MODES = ("full_refresh", "incremental")


class InputFileError(AirbyteTracedException):
    """A ``--config``, ``--state`` or ``--catalog`` file the user must fix; surfaces as an Airbyte ``config_error``."""

    def __init__(self, option: str, path: Optional[str], problem: str, fix: str) -> None:
        where = f"The {option} file '{path}'" if path else f"The {option.lstrip('-')} given to read"
        message = f"{where} {problem}. {fix}"
        super().__init__(message=message, internal_message=message, failure_type=FailureType.config_error)
        self.option = option
        self.path = path


def read_config_file(path: str) -> MutableMapping[str, Any]:
    """The ``--config`` file's JSON object (its fields are validated later by ``BitbucketConfig``).

    Raises:
        InputFileError: the file cannot be read, is empty, is not JSON, or is not a JSON object.
    """
    content = _load_json("--config", path, CONFIG_FIX)
    if not isinstance(content, dict):
        raise InputFileError("--config", path, f"holds a JSON {_kind(content)}, not an object", CONFIG_FIX)
    return content


def read_state_file(path: Optional[str]) -> List[AirbyteStateMessage]:
    """The state messages of the ``--state`` file (no file: none).

    Raises:
        InputFileError: the file cannot be read, is not JSON, or is not a list of per-stream states.
    """
    if not path:
        return []
    content = _load_json("--state", path, STATE_FIX)
    if content is None:
        return []

    def fail(problem: str) -> InputFileError:
        return InputFileError("--state", path, problem, STATE_FIX)

    if isinstance(content, Mapping):
        raise fail(f"holds a JSON object; it must be {STATE_SHAPE}"
                   + (" (put this object in a list)" if "stream" in content or "type" in content else ""))
    if not isinstance(content, list):
        raise fail(f"holds a JSON {_kind(content)}; it must be {STATE_SHAPE}")
    messages: List[AirbyteStateMessage] = []
    for number, entry in enumerate(content, start=1):
        for stream_state in _stream_states(entry, f"entry {number}", fail):
            try:
                messages.append(AirbyteStateMessageSerializer.load({"type": "STREAM", "stream": stream_state}))
            except Exception as error:  # a shape the checks above let through: still the file's fault
                raise fail(f"has an invalid entry {number}: {_first_line(error)}") from None
    return messages


def _stream_states(entry: Any, label: str, fail) -> Iterable[Mapping[str, Any]]:
    """The ``{"stream_descriptor": ..., "stream_state": ...}`` objects of one state file entry."""
    if not isinstance(entry, Mapping):
        raise fail(f"has an {label} that is a JSON {_kind(entry)}, not a state message object")
    kind = entry.get("type")
    if kind == "STATE" and "state" in entry:
        raise fail(f"has an {label} that is a whole STATE output line; keep only its \"state\" object")
    if kind == "GLOBAL" or "global" in entry:
        raise fail(f"has a GLOBAL state ({label}); this connector keeps one STREAM state per stream")
    if kind == "LEGACY" or (kind is None and "data" in entry and "stream" not in entry):
        data = entry.get("data")
        if not isinstance(data, Mapping):
            raise fail(f"has a LEGACY {label} whose \"data\" is not an object of stream states")
        for name, stream_state in data.items():
            yield _stream_state({"stream_descriptor": {"name": name}, "stream_state": stream_state},
                                f"{label} (LEGACY), stream '{name}'", fail)
        return
    if kind not in (None, "STREAM"):
        raise fail(f"has an {label} of type {json.dumps(kind)}; expected \"STREAM\"")
    if "stream" not in entry:
        raise fail(f"has an {label} without a \"stream\" object (stream_descriptor and stream_state)")
    yield _stream_state(entry["stream"], label, fail)


def _stream_state(stream: Any, label: str, fail) -> Mapping[str, Any]:
    if not isinstance(stream, Mapping):
        raise fail(f"has an {label} whose \"stream\" is a JSON {_kind(stream)}, not an object")
    descriptor = stream.get("stream_descriptor")
    if not isinstance(descriptor, Mapping):
        raise fail(f"has an {label} without a stream descriptor (\"stream_descriptor\": {{\"name\": ...}})")
    name = descriptor.get("name")
    if not isinstance(name, str) or not name:
        raise fail(f"has an {label} whose stream descriptor has no stream name")
    namespace = descriptor.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise fail(f"has an {label} (stream '{name}') whose namespace is not a string")
    stream_state = stream.get("stream_state")
    if stream_state is not None and not isinstance(stream_state, Mapping):
        raise fail(f"has a stream_state for stream '{name}' that is a JSON {_kind(stream_state)}, not an object")
    return {"stream_descriptor": {"name": name, "namespace": namespace}, "stream_state": stream_state}


def read_catalog_file(path: str) -> ConfiguredAirbyteCatalog:
    """The configured catalog of the ``--catalog`` file.

    Raises:
        InputFileError: the file cannot be read, is not JSON, or is not a configured catalog.
    """

    def fail(problem: str) -> InputFileError:
        return InputFileError("--catalog", path, problem, CATALOG_FIX)

    content = _load_json("--catalog", path, CATALOG_FIX)
    if not isinstance(content, Mapping):
        raise fail(f"holds a JSON {_kind(content)}; it must be a JSON object with a \"streams\" list")
    streams = content.get("streams")
    if not isinstance(streams, list):
        raise fail("has no \"streams\" list" if streams is None else f"has a \"streams\" that is a JSON {_kind(streams)}, not a list")
    for number, configured in enumerate(streams, start=1):
        stream = configured.get("stream") if isinstance(configured, Mapping) else None
        name = stream.get("name") if isinstance(stream, Mapping) else None
        if not isinstance(name, str) or not name:
            raise fail(f"has a stream entry {number} without a stream name (\"stream\": {{\"name\": ...}})")
        if configured.get("sync_mode") not in SYNC_MODES:
            raise fail(f"gives stream '{name}' the sync_mode {json.dumps(configured.get('sync_mode'))}; "
                       f"use {' or '.join(SYNC_MODES)}")
    try:
        return ConfiguredAirbyteCatalogSerializer.load(content)
    except Exception as error:
        raise fail(f"is not a valid configured catalog: {_first_line(error)}") from None


def check_catalog_streams(catalog: ConfiguredAirbyteCatalog, known: Iterable[str], path: Optional[str]) -> None:
    """Refuse a catalog that names streams this source does not have (the CDK would skip them and
    end the sync with exit code 0).

    Raises:
        InputFileError: listing the unknown streams and the streams that exist.
    """
    known = list(known)
    unknown = list(dict.fromkeys(c.stream.name for c in catalog.streams if c.stream.name not in known))
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        raise InputFileError(
            "--catalog", path,
            f"names {'a stream' if len(unknown) == 1 else 'streams'} this source does not have: {names}",
            f"Its streams are: {', '.join(known)}. Refresh the source schema (run 'discover' again) and "
            "remove the unknown streams from the catalog.",
        )


def _load_json(option: str, path: str, fix: str) -> Any:
    try:
        with open(path, "r", encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise InputFileError(option, path, f"cannot be read ({error.strerror or type(error).__name__})", fix) from None
    except UnicodeDecodeError:
        raise InputFileError(option, path, "is not UTF-8 text", fix) from None
    if not text.strip():
        raise InputFileError(option, path, "is empty", fix)
    try:
        return json.loads(text)
    except RecursionError:
        raise InputFileError(option, path, "is nested too deeply to be read", fix) from None
    except json.JSONDecodeError as error:
        raise InputFileError(option, path, f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})", fix) from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _first_line(error: Exception) -> str:
    lines = [line.strip(" -") for line in str(error).splitlines() if line.strip(" -")]
    return lines[-1] if lines else type(error).__name__
