"""The stream schemas in schemas/ must accept every recorded Bitbucket Cloud payload.

Schemas are resolved exactly the way the Airbyte CDK's ``ResourceSchemaLoader`` resolves them
(jsonref + ``JsonFileLoader``, ``$ref``s looked up in ``schemas/shared/``), then every record from
``unit_tests/resource/bitbucket-api/`` is completed with the fields the connector adds and validated
with Draft 7 (strict integers, lenient ``date-time`` that still requires a UTC offset unless the
field is declared ``airbyte_type: timestamp_without_timezone``).
"""

import copy
import json
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Tuple

import jsonref
import pytest
from airbyte_cdk.sources.utils.schema_helpers import JsonFileLoader, ResourceSchemaLoader, resolve_ref_links
from jsonschema import Draft7Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

from source_bitbucket.source import SourceBitbucket
from source_bitbucket.streams import STREAM_CLASSES, PipelineSteps
from source_bitbucket.streams.pull_request_scoped import PullRequestScopedStream
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = ROOT / "schemas"
FIXTURES_DIR = Path(__file__).resolve().parent / "resource" / "bitbucket-api"

STREAMS = tuple(stream.name for stream in STREAM_CLASSES)
CLASSES = {stream.name: stream for stream in STREAM_CLASSES}
# Cursor fields that may be absent: not required. In-progress deployments have no completed_on; an
# activity entry of an unknown kind may have no date; a repository listed without updated_on gives
# its refs none.
NULLABLE_CURSORS = {"completed_on", "activity_date", "repository_updated_on"}


def parent_fields(stream_class: type) -> List[str]:
    """The parents' keys the connector adds to every record of a per-parent stream."""
    if issubclass(stream_class, PullRequestScopedStream):
        return ["repository_uuid", "pull_request_id"]
    if issubclass(stream_class, PipelineSteps):
        return ["repository_uuid", "pipeline_uuid"]
    return ["repository_uuid"] if issubclass(stream_class, RepositoryScopedStream) else []


def required_fields(stream_class: type) -> List[str]:
    """What every record must carry: the parents' keys, the primary key, the cursor (unless nullable)."""
    key = [stream_class.primary_key] if isinstance(stream_class.primary_key, str) else list(stream_class.primary_key)
    cursor = stream_class.cursor_field if isinstance(stream_class.cursor_field, str) else None
    fields = parent_fields(stream_class) + key + ([cursor] if cursor and cursor not in NULLABLE_CURSORS else [])
    return list(dict.fromkeys(fields))


KEY_FIELDS = {name: required_fields(stream_class) for name, stream_class in CLASSES.items()}
# Key fields that must be present but may be null (none: the CDK's serializer drops top-level
# null values from RECORD data, so a nullable field can never be required).
NULLABLE_KEY_FIELDS: set = set()
FAKE_REPOSITORY = {"uuid": "{7c1c3f4e-2b9a-4d7e-9a55-0f3c8d2e6b10}", "full_name": "acme-team-1/fake-repo"}

# (file name prefix, schema, payload shape). "list" = a page with `values` or a bare array of items.
FIXTURE_KINDS: Tuple[Tuple[str, str, str], ...] = (
    ("repositories__", "repositories", "list"),
    ("repository_single__", "repositories", "object"),
    ("pullrequests__", "pull_requests", "list"),
    ("pullrequest_single__", "pull_requests", "object"),
    ("commits__", "commits", "list"),
    ("deployments__", "deployments", "list"),
    ("user_permissions_workspaces__", "workspace_users", "list"),
    ("user__", "shared/account", "object"),
    ("environments__", "environments", "list"),
    ("pipelines__", "pipelines", "list"),
    ("pipeline_single__", "pipelines", "object"),
    ("pipeline_steps__", "pipeline_steps", "list"),
    ("pipeline_step_single__", "pipeline_steps", "object"),
    ("pullrequest_activity__", "pull_request_activity", "list"),
    ("pullrequest_comments__", "pull_request_comments", "list"),
    ("pullrequest_commits__", "pull_request_commits", "list"),
    ("diffstat__", "pull_request_diffstat", "list"),
    ("branches__", "branches", "list"),
    ("tags__", "tags", "list"),
    ("projects__", "projects", "list"),
)
# Streams whose own ``transform`` shapes the record (it lifts, trims or drops fields): the fixtures go through it.
TRANSFORMED = ("pipelines", "pipeline_steps", "pull_request_activity", "pull_request_diffstat", "branches", "tags")


# --- schema loading (same resolution as airbyte_cdk ResourceSchemaLoader._resolve_schema_references) ---


def _resolve(raw: Mapping[str, Any], schemas_dir: Path = SCHEMAS_DIR) -> dict:
    base = str(schemas_dir.parent) + "/"
    resolved = jsonref.JsonRef.replace_refs(raw, loader=JsonFileLoader(base, "schemas/shared"), base_uri=base)
    return resolve_ref_links(resolved)


def raw_schema(name: str) -> dict:
    return json.loads((SCHEMAS_DIR / f"{name}.json").read_text())


_SCHEMA_CACHE: dict = {}


def load_schema(name: str) -> dict:
    """`name` is a stream name or `shared/<file stem>`."""
    if name not in _SCHEMA_CACHE:
        _SCHEMA_CACHE[name] = _resolve(raw_schema(name))
    return copy.deepcopy(_SCHEMA_CACHE[name])


# --- validator: Draft 7, strict integers, lenient date-time ---

_DATE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$")
FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(value: Any) -> bool:
    """ISO 8601 with a `T`; fractions of any length up to 9 digits; `Z`, `+hh:mm` or no offset."""
    if not isinstance(value, str):
        return True
    match = _DATE_TIME.match(value)
    if not match:
        return False
    fraction = (match.group(2) or "")[:7]
    datetime.fromisoformat(match.group(1) + fraction)  # rejects impossible dates/times
    return True


def _format_with_offset_rule(validator, fmt, instance, schema) -> Iterator[ValidationError]:
    yield from Draft7Validator.VALIDATORS["format"](validator, fmt, instance, schema)
    if fmt == "date-time" and isinstance(instance, str):
        match = _DATE_TIME.match(instance)
        if match and not match.group(3) and schema.get("airbyte_type") != "timestamp_without_timezone":
            yield ValidationError(
                f"{instance!r} has no UTC offset; declare the field airbyte_type timestamp_without_timezone"
            )


RecordValidator = validators.extend(
    Draft7Validator,
    validators={"format": _format_with_offset_rule},
    type_checker=Draft7Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


def errors_for(schema_name: str, record: Any) -> List[str]:
    validator = RecordValidator(load_schema(schema_name), format_checker=FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(record), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- fixtures -> records ---


def fixture_kind(path: Path) -> Tuple[str, str]:
    for prefix, schema_name, shape in FIXTURE_KINDS:
        if path.name.startswith(prefix):
            return schema_name, shape
    raise LookupError(path.name)


def record_fixtures() -> List[Path]:
    return sorted(p for p in FIXTURES_DIR.iterdir() if p.suffix == ".json" and not p.name.startswith("error_"))


def payload_items(payload: Any, shape: str) -> List[Any]:
    if shape == "object":
        assert isinstance(payload, dict) and "values" not in payload, "expected a single object"
        return [payload]
    if isinstance(payload, list):  # bare `values` array
        return payload
    assert isinstance(payload, dict) and isinstance(payload.get("values"), list), "expected a page with `values`"
    return payload["values"]


def to_record(stream: str, item: Mapping[str, Any]) -> dict:
    """Add the fields the connector adds to the raw API object."""
    record = copy.deepcopy(dict(item))
    if stream in TRANSFORMED:
        return _transformed(stream, record)
    parents = parent_fields(CLASSES[stream]) if stream in CLASSES else []
    if "repository_uuid" in parents:
        record["repository_uuid"] = FAKE_REPOSITORY["uuid"]
        record["repository_full_name"] = FAKE_REPOSITORY["full_name"]
    if "pull_request_id" in parents:
        record["pull_request_id"], record["pull_request_updated_on"] = 1, "2024-05-01T10:00:00.000000+00:00"
    if stream == "deployments":
        record["completed_on"] = (record.get("state") or {}).get("completed_on")
    if stream == "workspace_users":
        record["user_uuid"] = (record.get("user") or {}).get("uuid")
    return record


def _transformed(stream: str, item: dict) -> dict:
    """The record the stream's own ``transform`` makes of ``item``, read from ``FAKE_REPOSITORY``
    (a pipeline read again by uuid, so no date window applies; steps of a fake pipeline; a fake
    pull request; refs listed with a fake repository updated_on; start_date 2000, before every fixture)."""
    config = {"workspace": "acme-team-1", "email": "a@example.com", "api_token": "t", "start_date": "2000-01-01T00:00:00Z"}
    streams = {s.name: s for s in SourceBitbucket().streams(config)}
    repository = {**FAKE_REPOSITORY, "slug": FAKE_REPOSITORY["full_name"].split("/")[1]}
    pipeline = {"uuid": "{PipelineUuid}", "created_on": "2020-11-03T22:14:50.671Z", "state": {"name": "COMPLETED"}}
    pull_request = {"id": 1, "updated_on": "2024-05-01T10:00:00.000000+00:00"}
    stream_slice = {"repository": repository, "since": "2000-01-01T00:00:00+00:00", "pipeline_uuid": pipeline["uuid"], "pipeline": pipeline,
                    "pull_request": pull_request, "repository_updated_on": "2024-05-01T10:00:00.000000+00:00"}
    (record,) = streams[stream].transform(item, stream_slice)
    return dict(record)


def records_of(path: Path) -> List[dict]:
    schema_name, shape = fixture_kind(path)
    return [to_record(schema_name, item) for item in payload_items(json.loads(path.read_text()), shape)]


def sample_record(stream: str) -> dict:
    for path in record_fixtures():
        if fixture_kind(path)[0] == stream and records_of(path):
            return records_of(path)[0]
    raise LookupError(stream)


# --- schema files ---


def _walk(node: Any, path: str = "") -> Iterator[Tuple[str, Any]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def _types(node: Mapping[str, Any]) -> List[str]:
    t = node.get("type", [])
    return [t] if isinstance(t, str) else list(t)


@pytest.mark.parametrize("stream", STREAMS)
def test_schema_is_draft7_and_fully_resolved(stream):
    raw = raw_schema(stream)
    Draft7Validator.check_schema(raw)
    resolved = load_schema(stream)
    Draft7Validator.check_schema(resolved)
    assert not [p for p, node in _walk(resolved) if "$ref" in node], "unresolved $ref"
    assert resolved["type"] == "object"


def test_deployments_cursor_is_nullable_and_not_required():
    """In-progress and undeployed deployments have no completed_on; the CDK omits the null key."""
    schema = load_schema("deployments")
    assert "completed_on" not in schema["required"]
    assert "null" in _types(schema["properties"]["completed_on"])


@pytest.mark.parametrize("stream", STREAMS)
def test_schema_conventions(stream):
    schema = load_schema(stream)
    assert sorted(schema["required"]) == sorted(KEY_FIELDS[stream])
    assert schema["additionalProperties"] is True
    for key in KEY_FIELDS[stream]:
        types = _types(schema["properties"][key])
        assert ("null" in types) == ((stream, key) in NULLABLE_KEY_FIELDS), f"{key}: {types}"
    for path, node in _walk(schema):
        if "object" in _types(node):
            assert node.get("additionalProperties") is True, f"{path}: additionalProperties must be true"
        if path.count("/properties/") and path.rsplit("/", 2)[-2] == "properties":
            # every property except the top-level keys is nullable, and is typed
            assert _types(node), f"{path}: no type"
            is_key = path.count("/properties/") == 1 and path.rsplit("/", 1)[-1] in KEY_FIELDS[stream]
            if not is_key:
                assert "null" in _types(node), f"{path}: must be nullable"
        if node.get("format") == "date-time":
            assert "string" in _types(node), path


@pytest.mark.parametrize("name", sorted(p.stem for p in (SCHEMAS_DIR / "shared").glob("*.json")))
def test_shared_schema_is_nullable_open_object(name):
    raw = raw_schema(f"shared/{name}")
    Draft7Validator.check_schema(raw)
    assert raw["type"] == ["null", "object"] and raw["additionalProperties"] is True


@pytest.fixture(scope="module")
def cdk_package(tmp_path_factory):
    """A throwaway package holding a copy of schemas/, so the CDK's own ResourceSchemaLoader can read it."""
    name = "bb_schemas_probe_pkg"
    root = tmp_path_factory.mktemp("cdk_pkg")
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    shutil.copytree(SCHEMAS_DIR, root / name / "schemas")
    sys.path.insert(0, str(root))
    try:
        yield name
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(name, None)


@pytest.mark.parametrize("stream", STREAMS)
def test_cdk_resource_schema_loader_resolves_the_same_schema(stream, cdk_package):
    assert ResourceSchemaLoader(cdk_package).get_schema(stream) == load_schema(stream)


# Primary keys and cursors as the connector declares them (see KEY_FIELDS for what must be present).
def _catalog_keys(stream_class: type) -> tuple:
    key = [stream_class.primary_key] if isinstance(stream_class.primary_key, str) else stream_class.primary_key
    cursor = stream_class.cursor_field if isinstance(stream_class.cursor_field, str) else None
    return [[field] for field in key], ([cursor] if cursor else None)


CATALOG_KEYS = {name: _catalog_keys(stream_class) for name, stream_class in CLASSES.items()}


def test_discovered_catalog_passes_the_cdk_standard_catalog_checks():
    """The checks `test_discover` of the CDK standard tests runs, including the not-yet-enforced ones."""
    checks = pytest.importorskip("airbyte_cdk.test.standard_tests._catalog_checks")
    from airbyte_cdk.models import AirbyteCatalog, AirbyteStream, SyncMode

    streams = [
        AirbyteStream(
            name=stream,
            json_schema=load_schema(stream),
            supported_sync_modes=[SyncMode.full_refresh] + ([SyncMode.incremental] if cursor else []),
            source_defined_cursor=bool(cursor) or None,
            default_cursor_field=cursor,
            source_defined_primary_key=primary_key,
        )
        for stream, (primary_key, cursor) in CATALOG_KEYS.items()
    ]
    problems = checks.find_catalog_problems(AirbyteCatalog(streams=streams))
    assert not problems, checks.format_catalog_problems(problems)


# --- payloads ---


def test_every_fixture_is_classified():
    unknown = [p.name for p in FIXTURES_DIR.iterdir() if not p.name.startswith("error_") and p.suffix == ".json"]
    unknown = [n for n in unknown if not any(n.startswith(prefix) for prefix, _, _ in FIXTURE_KINDS)]
    assert not unknown
    covered = {fixture_kind(p)[0] for p in record_fixtures() if records_of(p)}
    assert covered >= set(STREAMS)


@pytest.mark.parametrize("path", record_fixtures(), ids=lambda p: p.name)
def test_fixture_records_validate(path):
    schema_name, _ = fixture_kind(path)
    records = records_of(path)
    if path.stem.endswith("_empty"):
        assert records == []
    for i, record in enumerate(records):
        errors = errors_for(schema_name, record)
        assert not errors, f"{path.name} item {i}:\n" + "\n".join(errors)


def test_fixtures_contain_the_quirks_the_schemas_accept():
    """Guard against the fixtures silently losing the shapes that drove the schemas' nullability."""
    commits = [r for p in record_fixtures() if fixture_kind(p)[0] == "commits" for r in records_of(p)]
    assert any("user" not in r["author"] for r in commits), "commit author without user"
    deployments = [r for p in record_fixtures() if fixture_kind(p)[0] == "deployments" for r in records_of(p)]
    undeployed = [r for r in deployments if r["state"]["name"] == "UNDEPLOYED"]
    assert undeployed and all(r["completed_on"] is None and r["state"]["status"] == {} for r in undeployed)
    assert any(set(r["environment"]) == {"uuid"} for r in deployments)
    members = [r for p in record_fixtures() if fixture_kind(p)[0] == "workspace_users" for r in records_of(p)]
    assert any(r.get("added_on") and not _DATE_TIME.match(r["added_on"]).group(3) for r in members)
    prs = [r for p in record_fixtures() if fixture_kind(p)[0] == "pull_requests" for r in records_of(p)]
    assert any(r["merge_commit"] is None and r["closed_by"] is None for r in prs)


# --- negative cases: the schemas must reject wrong records ---


def test_pull_request_id_as_string_fails():
    record = sample_record("pull_requests")
    assert not errors_for("pull_requests", record)
    record["id"] = str(record["id"])
    assert any(e.startswith("id:") for e in errors_for("pull_requests", record))
    record["id"] = 1.0
    assert errors_for("pull_requests", record), "integers are strict"


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("value", [[], "record", None, 42, [{"id": 1}]], ids=["list", "str", "null", "int", "array"])
def test_top_level_must_be_an_object(stream, value):
    assert errors_for(stream, value)


@pytest.mark.parametrize(
    "stream,key", [(s, k) for s in STREAMS for k in KEY_FIELDS[s]], ids=lambda v: v if isinstance(v, str) else None
)
def test_key_fields_are_required(stream, key):
    record = sample_record(stream)
    assert not errors_for(stream, record)
    missing = {k: v for k, v in record.items() if k != key}
    assert any(f"'{key}' is a required property" in e for e in errors_for(stream, missing))
    nulled = {**record, key: None}
    if (stream, key) in NULLABLE_KEY_FIELDS:
        assert not errors_for(stream, nulled)
    else:
        assert errors_for(stream, nulled)


@pytest.mark.parametrize(
    "stream,path,value",
    [
        ("repositories", ["updated_on"], "yesterday"),
        ("repositories", ["updated_on"], "2022-03-21T05:51:36"),  # tz-aware field without offset
        ("repositories", ["updated_on"], "2022-02-30T05:51:36+00:00"),
        ("repositories", ["is_private"], "yes"),
        ("repositories", ["owner", "uuid"], 5),
        ("repositories", ["links", "clone"], {"href": "x"}),
        ("commits", ["date"], "2019-05-13"),
        ("commits", ["author", "user"], "Dev User 1"),
        ("commits", ["parents"], "abc"),
        ("pull_requests", ["source", "repository"], "repo"),
        ("pull_requests", ["comment_count"], "3"),
        ("deployments", ["completed_on"], "soon"),
        ("deployments", ["state", "started_on"], 1638692733),
        ("deployments", ["version"], "5"),
        ("workspace_users", ["added_on"], "April 2nd"),
        ("workspace_users", ["user", "display_name"], ["Dev User 43"]),
    ],
    ids=lambda v: "/".join(v) if isinstance(v, list) else None,
)
def test_wrong_field_types_fail(stream, path, value):
    record = sample_record(stream)
    assert not errors_for(stream, record)
    target = record
    for part in path[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[path[-1]] = value
    errors = errors_for(stream, record)
    assert any(e.startswith("/".join(path) + ":") for e in errors), f"{stream} accepted {path}={value!r}: {errors}"


def test_unknown_fields_are_allowed_everywhere():
    record = sample_record("pull_requests")
    record["brand_new_field"] = {"x": 1}
    record["author"]["brand_new_field"] = [1, 2]
    record["source"]["repository"]["brand_new_field"] = True
    assert not errors_for("pull_requests", record)
