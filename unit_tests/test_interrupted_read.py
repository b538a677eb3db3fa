"""An interrupted read does not log "Finished syncing <stream>" for the stream it interrupted.

The CDK logs it in a ``finally`` of ``AbstractSource.read``, which also runs when Ctrl-C
(KeyboardInterrupt) goes through the stream, or when the reader of the messages closes them mid-stream
(what ``run.py`` does after a Ctrl-C that arrives while a message is printed).
"""

from __future__ import annotations

import logging
from typing import List

import pytest
import responses
from airbyte_cdk.models import SyncMode, Type
from airbyte_cdk.test.catalog_builder import CatalogBuilder

from source_bitbucket import SourceBitbucket
from unit_tests.conftest import API, WORKSPACE


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def members(n: int) -> dict:
    return {"values": [{"user": {"uuid": f"{{u{i}}}", "display_name": f"User {i}"}, "workspace": {"slug": WORKSPACE}}
                       for i in range(n)], "pagelen": 100}


@pytest.mark.parametrize("interrupt", ["keyboard_interrupt", "closed_by_the_reader"])
@responses.activate
def test_the_interrupted_stream_is_not_reported_finished(config, interrupt):
    responses.get(f"{API}/repositories/{WORKSPACE}", json={"values": [], "pagelen": 100})
    responses.get(f"{API}/workspaces/{WORKSPACE}/members", json=members(3))
    catalog = CatalogBuilder().with_stream("repositories", SyncMode.full_refresh).with_stream("workspace_users", SyncMode.full_refresh).build()
    logger = logging.getLogger(f"test.interrupted.{interrupt}")
    logger.propagate, logger.level = False, logging.INFO
    collect = Collect()
    logger.addHandler(collect)
    source = SourceBitbucket()
    messages = source.read(logger, config, catalog)
    for message in messages:
        if message.type == Type.RECORD and message.record.stream == "workspace_users":
            break
    if interrupt == "keyboard_interrupt":
        with pytest.raises(KeyboardInterrupt):
            messages.throw(KeyboardInterrupt())
    else:
        messages.close()
    assert "Finished syncing repositories" in collect.messages
    assert "Finished syncing workspace_users" not in collect.messages
    assert any(m.startswith("Stopped syncing workspace_users before its end (interrupted)") for m in collect.messages)
    assert not logger.filters, "the filter outlived the read"
    # the next read of the same source reports its streams normally
    collect.messages.clear()
    list(source.read(logger, config, catalog))
    assert "Finished syncing workspace_users" in collect.messages
