"""SourceBitbucket: config -> streams, and the connection check."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any, Iterator, List, Mapping, MutableMapping, Optional, Set, Tuple

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    Status,
)
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.auth import authenticator
from source_bitbucket.check import check_connection
from source_bitbucket.rate_limit import RateLimitGate, estimate_message
from source_bitbucket.config import BitbucketConfig
from source_bitbucket.state import SyncClock
from source_bitbucket.inputs import check_catalog_streams, read_catalog_file, read_config_file, read_state_file
from source_bitbucket.streams import STREAM_CLASSES, Repositories
from source_bitbucket.streams.base import BitbucketStream
from source_bitbucket.streams.pipeline_steps import PipelineListing
from source_bitbucket.streams.pipelines import PipelineRefs
from source_bitbucket.streams.pull_request_scoped import PullRequestListing, PullRequestRefs, PullRequestScopedStream
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream


class SourceBitbucket(AbstractSource):
    """Bitbucket Cloud source: repositories, pull_requests, commits, deployments, workspace_users.

    ``read`` and ``discover`` validate the config with ``BitbucketConfig`` (messages that name the
    field and the fix) instead of the CDK's generic spec validation. ``read`` refuses malformed
    ``--state`` and ``--catalog`` files, and catalogs naming unknown streams, before any request
    (``inputs.py``).
    """

    check_config_against_spec = False

    def __init__(self) -> None:
        super().__init__()
        self._stop_sync = threading.Event()
        self._catalog_path: Optional[str] = None
        self._unfinished: Set[str] = set()

    @staticmethod
    def read_config(config_path: str) -> MutableMapping[str, Any]:
        """The ``--config`` file's object; a missing, empty or malformed file is a config error naming it."""
        return read_config_file(config_path)

    @classmethod
    def read_state(cls, state_path: str) -> List[AirbyteStateMessage]:
        """The ``--state`` file's per-stream states; a malformed file is a config error naming it."""
        return read_state_file(state_path)

    def read_catalog(self, catalog_path: str) -> ConfiguredAirbyteCatalog:  # type: ignore[override]  # an instance method: remembers the path for read()
        """The ``--catalog`` file's configured catalog; a malformed file is a config error naming it."""
        self._catalog_path = catalog_path
        return read_catalog_file(catalog_path)

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        """``AbstractSource.read``, after refusing a catalog that names unknown streams (before any
        request), and without claiming "Finished syncing <stream>" for a stream that was interrupted
        (Ctrl-C, or the reader closed mid-stream): the CDK logs it in a ``finally``."""
        self._selected = {configured.stream.name for configured in catalog.streams}
        check_catalog_streams(catalog, [stream.name for stream in self.streams(config)], self._catalog_path)
        self._unfinished = set()  # this read's: a source may read more than once
        note = _UnfinishedStreams(self._unfinished)
        logger.addFilter(note)
        try:
            yield from super().read(logger, config, catalog, state)
        finally:
            logger.removeFilter(note)

    def _read_stream(self, logger: logging.Logger, stream_instance: Stream, configured_stream: ConfiguredAirbyteStream,
                     state_manager: Any, internal_config: Any) -> Iterator[AirbyteMessage]:
        try:
            yield from super()._read_stream(logger, stream_instance, configured_stream, state_manager, internal_config)
        except (KeyboardInterrupt, GeneratorExit):
            self._unfinished.add(configured_stream.stream.name)
            raise

    @property
    def stop_sync_on_stream_failure(self) -> bool:
        """Stop the whole sync once a failure means every other stream would fail the same way
        (HTTP 401: the credentials; HTTP 404 on a workspace listing: the workspace). Other stream
        failures let the next streams sync."""
        return self._stop_sync.is_set()

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """As ``AbstractSource.check``, but the failure message is shown as written (not ``repr``-quoted)."""
        succeeded, message = self.check_connection(logger, config)
        if succeeded:
            return AirbyteConnectionStatus(status=Status.SUCCEEDED)
        return AirbyteConnectionStatus(status=Status.FAILED, message=message)

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> Tuple[bool, Optional[str]]:
        """The credentials, the workspace and the token's scopes, in 4 requests at most (see
        ``source_bitbucket.check``). Fails fast: no retries, no rate-limit waits."""
        try:
            parsed = BitbucketConfig.from_mapping(config)
        except AirbyteTracedException as error:
            return False, error.message
        return check_connection(parsed, authenticator(parsed, config), logger)

    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        """The registered streams (``STREAM_CLASSES``), in that order. Raises a config error (naming the field) when the config is invalid.

        The repository-scoped streams are children of the ``repositories`` stream and read its
        ``listing`` (``RepositoryListing``), which is read once per sync: the ``repositories``
        stream emits it in full refresh.
        """
        parsed = BitbucketConfig.from_mapping(config)
        started = datetime.now(timezone.utc)
        common = {
            "config": parsed,
            "sync_started_at": started,
            "sync_clock": SyncClock(started),  # shared: one stream's first answer tells every stream Bitbucket's clock
            "authenticator": authenticator(parsed, config),
            "rate_limit_gate": RateLimitGate(logging.getLogger("airbyte")),
            "stop_sync": self._stop_sync,
        }
        repositories = Repositories(**common)
        listings = {
            "pull_request_listing": PullRequestListing(PullRequestRefs(parent=repositories, **common)),
            "pipeline_listing": PipelineListing(PipelineRefs(parent=repositories, **common)),
        }
        streams = [_build(stream_class, repositories, listings, common) for stream_class in STREAM_CLASSES]
        selected = getattr(self, "_selected", set())  # the streams of the catalog being read
        listings["pull_request_listing"].reader.readers = tuple(  # named in its skip warning
            s.name for s in streams if isinstance(s, PullRequestScopedStream) and (s.name in selected or not selected))
        repositories.listing_read_anyway = any(isinstance(s, RepositoryScopedStream) and s.name in selected for s in streams)
        chosen = [s for s in streams if s.name in selected]
        repositories.listing.on_read = lambda count: logging.getLogger("airbyte").info(estimate_message(
            count,
            [s.name for s in chosen if isinstance(s, RepositoryScopedStream) and not isinstance(s, PullRequestScopedStream)],
            [s.name for s in chosen if isinstance(s, PullRequestScopedStream)],
            [s.name for s in chosen if s.workspace_level and parsed.selection.reads_workspace_streams],
            parsed.credentials.auth_type))
        return streams


class _UnfinishedStreams(logging.Filter):
    """Rewrites the CDK's "Finished syncing <stream>" for the streams in ``unfinished``."""

    def __init__(self, unfinished: Set[str]) -> None:
        super().__init__()
        self.unfinished = unfinished

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Finished syncing ") and message[len("Finished syncing "):] in self.unfinished:
            stream = message[len("Finished syncing "):]
            record.msg, record.args = f"Stopped syncing {stream} before its end (interrupted); the next sync resumes from its last STATE", None
        return True


def _build(stream_class: type, repositories: Repositories, listings: Mapping[str, Any], common: Mapping[str, Any]) -> BitbucketStream:
    """One registered stream: the ``repositories`` stream itself; a repository-scoped stream, whose
    parent it is (it reads its ``listing``); or a workspace-level stream. Each also gets the shared
    listings its class names in ``listings`` (e.g. ``pull_request_listing``)."""
    if stream_class is Repositories:
        return repositories
    kwargs = {name: listings[name] for name in stream_class.listings}
    if issubclass(stream_class, RepositoryScopedStream):
        kwargs["parent"] = repositories
    return stream_class(**kwargs, **common)
