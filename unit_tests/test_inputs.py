"""inputs.py: the --state and --catalog files of read, good and bad shapes."""

from __future__ import annotations

import json

import pytest
from airbyte_cdk.models import AirbyteStateType, FailureType

from source_bitbucket.streams import STREAM_CLASSES
from source_bitbucket.inputs import InputFileError, check_catalog_streams, read_catalog_file, read_state_file

STREAMS = [stream.name for stream in STREAM_CLASSES]
CURSOR = {"{aaaa}": {"updated_on": "2024-01-01T00:00:00.000000+00:00"}}


def stream_entry(name="pull_requests", stream_state=CURSOR, **extra):
    return {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": stream_state}, **extra}


def configured(name="pull_requests", sync_mode="incremental"):
    return {"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": sync_mode, "destination_sync_mode": "append"}


def write(tmp_path, content, name="file.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def states_by_name(messages):
    assert all(m.type == AirbyteStateType.STREAM for m in messages)
    return {m.stream.stream_descriptor.name: m.stream.stream_state for m in messages}


# ----------------------------------------------------------------------------- good state
@pytest.mark.parametrize("content", ["[]", "null", "[]\n"])
def test_no_state(tmp_path, content):
    assert read_state_file(write(tmp_path, content)) == []


def test_no_state_file():
    assert read_state_file(None) == [] and read_state_file("") == []


def test_per_stream_states_with_output_extras(tmp_path):
    content = [stream_entry(sourceStats={"recordCount": 3.0}), stream_entry("commits", {"{aaaa}": {"exclude": ["ab12"]}})]
    got = states_by_name(read_state_file(write(tmp_path, content)))
    assert got["pull_requests"].__dict__ == CURSOR
    assert got["commits"].__dict__ == {"{aaaa}": {"exclude": ["ab12"]}}


@pytest.mark.parametrize("stream_state", [None, {}])
def test_empty_stream_state_is_no_state_for_that_stream(tmp_path, stream_state):
    got = states_by_name(read_state_file(write(tmp_path, [stream_entry(stream_state=stream_state)])))
    assert not (got["pull_requests"].__dict__ if got["pull_requests"] is not None else {})


def test_an_entry_without_type_is_a_stream_state(tmp_path):
    entry = stream_entry()
    del entry["type"]
    got = states_by_name(read_state_file(write(tmp_path, [entry])))
    assert got["pull_requests"].__dict__ == CURSOR


def test_a_legacy_entry_becomes_one_stream_state_per_stream(tmp_path):
    content = [{"type": "LEGACY", "data": {"pull_requests": CURSOR, "repositories": {"updated_on": "2024-01-01T00:00:00Z"}}}]
    got = states_by_name(read_state_file(write(tmp_path, content)))
    assert got["pull_requests"].__dict__ == CURSOR
    assert got["repositories"].__dict__ == {"updated_on": "2024-01-01T00:00:00Z"}


# ----------------------------------------------------------------------------- bad state
BAD_STATES = [
    ("object_instead_of_a_list", {"pull_requests": CURSOR}, "holds a JSON object"),
    ("one_message_not_in_a_list", stream_entry(), "put this object in a list"),
    ("a_number", "42", "holds a JSON number"),
    ("empty_file", "", "is empty"),
    ("blank_file", "  \n\t", "is empty"),
    ("invalid_json", '[{"type": "STREAM",', "is not valid JSON"),
    ("entry_not_an_object", ["pull_requests"], "entry 1 that is a JSON string"),
    ("stream_state_a_string", [stream_entry(stream_state="2024-01-01")], "stream_state for stream 'pull_requests' that is a JSON string"),
    ("stream_state_a_list", [stream_entry(stream_state=[CURSOR])], "stream_state for stream 'pull_requests' that is a JSON list"),
    ("global_state", [{"type": "GLOBAL", "global": {"shared_state": {}, "stream_states": []}}], "GLOBAL state"),
    ("without_stream_descriptor", [{"type": "STREAM", "stream": {"stream_state": CURSOR}}], "without a stream descriptor"),
    ("descriptor_without_a_name", [{"type": "STREAM", "stream": {"stream_descriptor": {}, "stream_state": CURSOR}}], "no stream name"),
    ("name_not_a_string", [{"type": "STREAM", "stream": {"stream_descriptor": {"name": 5}}}], "no stream name"),
    ("stream_not_an_object", [{"type": "STREAM", "stream": "pull_requests"}], "\"stream\" is a JSON string"),
    ("stream_entry_without_stream", [{"type": "STREAM"}], "without a \"stream\" object"),
    ("whole_state_output_line", [{"type": "STATE", "state": stream_entry()}], "whole STATE output line"),
    ("unknown_type", [dict(stream_entry(), type="PER_STREAM")], "of type \"PER_STREAM\""),
    ("legacy_data_not_an_object", [{"type": "LEGACY", "data": [1]}], "LEGACY entry 1 whose \"data\" is not an object"),
    ("legacy_stream_state_a_string", [{"type": "LEGACY", "data": {"commits": "x"}}], "stream_state for stream 'commits'"),
    ("second_entry_bad", [stream_entry(), stream_entry("commits", "x")], "stream 'commits'"),
]


@pytest.mark.parametrize("content,expected", [pytest.param(c, e, id=i) for i, c, e in BAD_STATES])
def test_a_bad_state_file_is_a_config_error_naming_the_file_and_the_fix(tmp_path, content, expected):
    path = write(tmp_path, content, "state.json")
    with pytest.raises(InputFileError) as raised:
        read_state_file(path)
    error = raised.value
    assert error.failure_type == FailureType.config_error
    assert error.message.startswith(f"The --state file '{path}' ")
    assert expected in error.message
    assert "delete the file to re-sync every stream from start_date" in error.message


def test_a_missing_state_file(tmp_path):
    with pytest.raises(InputFileError, match="cannot be read \\(No such file or directory\\)"):
        read_state_file(str(tmp_path / "nope.json"))


# ----------------------------------------------------------------------------- catalogs
def test_a_good_catalog(tmp_path):
    catalog = read_catalog_file(write(tmp_path, {"streams": [configured(), configured("workspace_users", "full_refresh")]}))
    assert [c.stream.name for c in catalog.streams] == ["pull_requests", "workspace_users"]
    check_catalog_streams(catalog, STREAMS, "catalog.json")


BAD_CATALOGS = [
    ("not_json", "{streams: []}", "is not valid JSON"),
    ("empty_file", "", "is empty"),
    ("a_list", [configured()], "holds a JSON list; it must be a JSON object with a \"streams\" list"),
    ("without_streams", {"stream": []}, "has no \"streams\" list"),
    ("streams_not_a_list", {"streams": {"pull_requests": configured()}}, "\"streams\" that is a JSON object"),
    ("stream_without_a_name", {"streams": [{"stream": {}, "sync_mode": "full_refresh"}]}, "stream entry 1 without a stream name"),
    ("entry_not_an_object", {"streams": ["pull_requests"]}, "stream entry 1 without a stream name"),
    ("bad_sync_mode", {"streams": [configured(sync_mode="INVALID")]}, "sync_mode \"INVALID\""),
    ("without_json_schema", {"streams": [{"stream": {"name": "commits", "supported_sync_modes": ["full_refresh"]},
                                          "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]},
     "is not a valid configured catalog: \"json_schema\" is a required property"),
]


@pytest.mark.parametrize("content,expected", [pytest.param(c, e, id=i) for i, c, e in BAD_CATALOGS])
def test_a_bad_catalog_file_is_a_config_error_naming_the_file(tmp_path, content, expected):
    path = write(tmp_path, content, "catalog.json")
    with pytest.raises(InputFileError) as raised:
        read_catalog_file(path)
    assert raised.value.failure_type == FailureType.config_error
    assert raised.value.message.startswith(f"The --catalog file '{path}' ")
    assert expected in raised.value.message
    assert "refresh the source schema" in raised.value.message


def test_a_catalog_naming_unknown_streams_lists_the_streams_that_exist(tmp_path):
    path = write(tmp_path, {"streams": [configured("issues"), configured(), configured("issues"), configured("builds")]})
    catalog = read_catalog_file(path)
    with pytest.raises(InputFileError) as raised:
        check_catalog_streams(catalog, STREAMS, path)
    message = raised.value.message
    assert message.startswith(f"The --catalog file '{path}' names streams this source does not have: 'issues', 'builds'.")
    assert f"Its streams are: {', '.join(STREAMS)}." in message
    assert "Refresh the source schema" in message
