"""The stream registry (``source_bitbucket.streams.STREAM_CLASSES``): what every registered stream must declare.

A new stream class added to the registry gets these checks without writing a test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from airbyte_cdk.test.entrypoint_wrapper import discover

from source_bitbucket import SourceBitbucket
from source_bitbucket.check import PROBES
from source_bitbucket.streams import STREAM_CLASSES

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
CONFIG = {"workspace": "acme", "email": "dev@example.com", "api_token": "ATATT-registry-test"}


# Bitbucket's usual pagelen cap is 100; the diffstat answers 500 by default (spec example, live answers).
PAGELEN_CAPS = {"pull_request_diffstat": 500}


@pytest.mark.parametrize("stream_class", STREAM_CLASSES, ids=lambda c: c.name)
def test_every_registered_stream_declares_its_scope_key_and_page_size(stream_class):
    assert re.fullmatch(r"read:[a-z]+:bitbucket", stream_class.required_scope), stream_class.required_scope
    assert stream_class.primary_key
    assert 1 <= stream_class.page_size <= PAGELEN_CAPS.get(stream_class.name, 100)


@pytest.mark.parametrize("stream_class", STREAM_CLASSES, ids=lambda c: c.name)
def test_every_registered_stream_has_a_schema_declaring_its_key_and_cursor_fields(stream_class):
    schema = json.loads((SCHEMAS / f"{stream_class.name}.json").read_text())
    key = [stream_class.primary_key] if isinstance(stream_class.primary_key, str) else stream_class.primary_key
    cursor = stream_class.cursor_field if isinstance(stream_class.cursor_field, str) else None  # a class attribute, or the CDK's property
    for field in key + ([cursor] if cursor else []):
        assert field in schema["properties"], field


def test_the_source_offers_exactly_the_registered_streams_in_order():
    streams = discover(SourceBitbucket(), CONFIG).catalog.catalog.streams
    assert [s.name for s in streams] == [c.name for c in STREAM_CLASSES]


def test_check_probes_every_scope_a_registered_stream_needs():
    probed = {probe.scope for probe in PROBES} | {"read:repository:bitbucket"}  # the listing itself
    assert probed == {c.required_scope for c in STREAM_CLASSES}
    for probe in PROBES:
        assert set(probe.streams) == {c.name for c in STREAM_CLASSES if c.required_scope == probe.scope}


@pytest.mark.parametrize("stream_class", STREAM_CLASSES, ids=lambda c: c.name)
def test_no_stream_uses_the_cdk_s_deprecated_per_record_state_path(stream_class):
    """State goes through the ``state`` property (advanced by ``state.get_updated_state``); overriding
    ``Stream.get_updated_state`` would switch the CDK back to its deprecated path."""
    from airbyte_cdk.sources.streams import Stream

    assert stream_class.get_updated_state is Stream.get_updated_state
    assert stream_class.state.fset is not None  # the CDK sets the incoming state through it
