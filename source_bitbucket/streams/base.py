"""The shared HttpStream of every Bitbucket stream: URL, auth, next-link paging (``pagination``),
errors, state, schema."""

from __future__ import annotations

import copy
import threading
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Iterable, List, Mapping, MutableMapping, Optional, Tuple
from urllib.parse import urlparse

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.rate_limit import RateLimitGate
from source_bitbucket.backoff import BitbucketBackoffStrategy
from source_bitbucket.config import BitbucketConfig
from source_bitbucket.errors import BitbucketErrorHandler, is_page, missing_scopes
from source_bitbucket.state import RepositoryCursors, SyncClock, get_updated_state, usable_cursors
from source_bitbucket.streams.pagination import MAX_WALKS, ListingShifted, Walk, next_page_number_url, page_body



# Retries are bounded by time (config ``max_waiting_time``), not by count.
MAX_RETRIES = 1000


class BitbucketStream(HttpStream, ABC):
    """Base of all streams: ``{api_url}/...``, HTTP basic auth, ``next``-link pagination.

    Subclasses set ``name``, ``primary_key``, ``cursor_field``, ``page_size`` (the endpoint's
    maximum ``pagelen``), ``required_scope`` (the API-token scope of the endpoint, named by 403
    messages and probed by ``check``) and ``first_page_path``; they may override ``first_page_params`` and
    ``transform`` (decorate or drop each record).

    When state is written (the state contract: a STATE never claims a record that was not
    emitted, even if the process dies right after it): only at the end of a slice, after a walk
    of its listing that finished without a detected shift; never every N records
    (``state_checkpoint_interval`` stays None). A page-numbered listing can shift under the
    reader: when an item already passed moves behind the read position (updated, in an
    ``updated_on``-sorted listing), the item after the page boundary slides onto a page already
    read and is skipped, and nothing shows it until the moved item comes up again on a later
    page. A cursor written before that point could claim the skipped item. At the end of a walk
    every such shift has shown itself (an item came twice, or ``size`` shrank: the slice is read
    again) or was caused by a record changed during the sync, whose ``updated_on`` pins the
    cursor where the sync started it (``RepositoryCursors``). Commits add a second reason: an
    excluded tip hides all its ancestors, so a frontier written mid-repository would drop the
    unread pages.
    """

    page_size: int = 100
    required_scope: str = ""  # the API-token scope the endpoint needs, e.g. read:repository:bitbucket
    state_checkpoint_interval = None  # see above: state only at the end of a slice
    skip_statuses: frozenset = frozenset()
    detect_shifts: bool = True  # page-numbered listings; the commits iterator does not shift
    # An item seen twice in one walk means the listing shifted (read it again from the first page);
    # False for newest-first listings of immutable items (pipelines): newer items arriving push the
    # ones already read onto the next page, nothing is skipped, and the repeat is only dropped.
    repeats_are_shifts: bool = True
    # Follow the answer's ``next`` link (it carries every parameter); False: build the next page on
    # the request's own URL (``next_page_number_url``), for endpoints whose ``next`` drops parameters.
    follows_next: bool = True
    # The shared listings (``source._build`` keyword arguments) the stream reads, e.g. pull_request_listing.
    listings: Tuple[str, ...] = ()
    # A workspace-level stream (members, projects): with a ``partition``, only bucket 0 reads it.
    workspace_level: bool = False

    def __init__(
        self,
        config: BitbucketConfig,
        sync_started_at: datetime,
        rate_limit_gate: Optional[RateLimitGate] = None,
        stop_sync: Optional[threading.Event] = None,
        sync_clock: Optional[SyncClock] = None,
        **kwargs: Any,
    ) -> None:
        self.config = config
        self.sync_started_at = sync_started_at
        self.rate_limit_gate = rate_limit_gate or RateLimitGate()
        self.stop_sync = stop_sync or threading.Event()
        super().__init__(**kwargs)
        self._local = threading.local()
        self._scope_refused: Optional[str] = None
        self.sync_clock = sync_clock or SyncClock(sync_started_at)
        self.cursors = RepositoryCursors(self.cursor_field or "", config.start_date, sync_started_at, self.sync_clock)
        self._state: MutableMapping[str, Any] = {}
        self._initial_state: Mapping[str, Any] = {}

    state_per_repository: bool = False  # the state has one entry per repository (repository-scoped streams)

    @property
    def state(self) -> MutableMapping[str, Any]:
        """The stream state (the CDK's state API, ``IncrementalMixin``): set once by the CDK from the
        incoming state, advanced by ``advance_state`` as records are emitted, read by the CDK when it
        checkpoints (at the end of each slice)."""
        return self._state

    @state.setter
    def state(self, value: Mapping[str, Any]) -> None:
        """Keep the incoming state minus the cursors that cannot be used (unparsable, or later than
        the start of the sync: see ``usable_cursors``), with one warning for each; those are never
        written back."""
        self._use_state(value or {})

    def recheck_state(self) -> None:
        """Apply ``usable_cursors`` again, now that Bitbucket's clock may be known (``SyncClock``):
        a cursor later than Bitbucket's time but earlier than the local one is in the future too.
        Call before any record is read (the repository-scoped streams do, once the listing is read).
        The state dict is changed in place: the CDK holds it since the read began, and keeps it as
        the checkpoint while the stream's state is empty."""
        current = self._state
        self._use_state(current)
        current.clear()
        current.update(self._state)
        self._state = current

    def _use_state(self, value: Mapping[str, Any]) -> None:
        usable = usable_cursors(value, self.cursor_field or "", self.sync_clock.start)
        for problem in usable.problems:
            self.logger.warning(f"{self.name}: {problem}. It is ignored and not written back (duplicates possible, nothing lost).")
        self.cursors.hold(usable.future)
        self._state = usable.state
        self._initial_state = copy.deepcopy(self._state)

    def advance_state(self, record: Mapping[str, Any]) -> None:
        """Apply ``get_updated_state`` for one record just handed to the CDK (on the CDK's thread)."""
        if self.cursor_field and isinstance(record, Mapping):
            self._state = get_updated_state(self._state, record, self.cursors, self._initial_state, self.state_per_repository)

    @property
    def url_base(self) -> str:
        return self.config.api_url + "/"

    def get_error_handler(self) -> ErrorHandler:
        return BitbucketErrorHandler(
            logger=self.logger,
            stream_name=self.name,
            scope=self.required_scope,
            on_scope_missing=self._refuse_further_requests,
            skips=self.is_skipped,
            workspace=self.config.workspace,
            stop_sync=self.stop_sync,
            is_whole=self.is_whole_answer,
            api_url=self.config.api_url,
            auth_type=self.config.credentials.auth_type,
            max_retries=MAX_RETRIES,
            max_time=timedelta(seconds=self.config.max_waiting_seconds),
        )

    def is_skipped(self, response: requests.Response) -> bool:
        """Whether an answer skips the partition being read (no records, one log line, the sync goes on)
        instead of failing the stream: a status in ``skip_statuses``, unless it is Bitbucket's scope
        error (``errors.missing_scopes``: every partition would answer the same, so the stream fails)."""
        return response.status_code in self.skip_statuses and missing_scopes(response) is None

    def is_whole_answer(self, response: requests.Response) -> bool:
        """Whether a 200 is whole (``errors.is_page``: a JSON page with ``values``); one that is not is
        retried. Streams that also read single objects override it."""
        return is_page(response)

    def get_backoff_strategy(self) -> BackoffStrategy:
        return BitbucketBackoffStrategy(
            logger=self.logger,
            stream_name=self.name,
            rate_limit_gate=self.rate_limit_gate,
            max_waiting_seconds=self.config.max_waiting_seconds,
            where=lambda: getattr(self._local, "where", ""),
        )

    def _refuse_further_requests(self, message: str) -> None:
        """The token lacks this stream's scope: the stream's other readers send nothing more."""
        self._scope_refused = message

    def request_kwargs(self, **kwargs: Any) -> Mapping[str, Any]:
        """Called before each page request: refuses it once the token is known to lack the stream's
        scope (no request, no log per repository), and holds it while a rate-limit wait is shared by
        all readers."""
        if self._scope_refused:
            raise AirbyteTracedException(message=self._scope_refused, internal_message=self._scope_refused,
                                         failure_type=FailureType.config_error)
        waited = self.rate_limit_gate.wait()
        if waited:
            self.logger.debug(f"{self.name}: held {waited:.1f} s by a rate-limit wait of another request")
        return super().request_kwargs(**kwargs)

    def request_params(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> MutableMapping[str, Any]:
        """First page: ``pagelen`` (the endpoint's maximum). Later pages: nothing, ``next`` carries it all."""
        if next_page_token:
            return {}
        return {"pagelen": self.page_size, **self.first_page_params(stream_state or {}, stream_slice or {})}

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        """Query parameters of the first page besides ``pagelen`` (``q``, ``sort``, ``state``...)."""
        return {}

    def path(
        self,
        *,
        stream_state: Optional[Mapping[str, Any]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> str:
        if next_page_token:
            return next_page_token["next"]
        return self.first_page_path(stream_slice or {})

    @abstractmethod
    def first_page_path(self, stream_slice: Mapping[str, Any]) -> str:
        """The endpoint path relative to ``api_url``, e.g. ``repositories/acme``."""

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        """``{"next": <absolute url>}`` from the body (or built on the request's URL: ``follows_next``),
        or None on the last page, an ignored error, or once the walk is ``done`` (the reader has what it needs).

        Raises:
            AirbyteTracedException: the link points to another server than ``api_url``
                (``same_api_host``: credentials are only ever sent to the configured API), or repeats a page
                already read in this slice (a pagination loop).
        """
        walk = self._walk()
        if not response.ok or walk.done:
            return None
        body = page_body(response)
        next_url = body.get("next") if self.follows_next else next_page_number_url(response.request.url, body)
        if not next_url:
            return None
        return {"next": walk.follow(str(next_url), response.request.url, self.config.api_url)}

    def _pages_followed(self) -> set:
        """The next links followed in the walk being read (per thread)."""
        return self._walk().followed

    def _walk(self) -> Walk:
        if not hasattr(self._local, "walk"):
            self._local.walk = Walk()
        return self._local.walk

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[StreamData]:
        """Read one slice; a failure is re-raised as one line naming the stream and the repository.

        Page-numbered listings can shift while they are read: an item that leaves the listing, or
        moves behind the pages already read, makes the item after it slide onto a page already read
        and be skipped. That shows as a shrinking ``size`` or an item seen twice; the slice is then
        read again from its first page (duplicates, never losses), up to ``MAX_WALKS`` times.
        """
        if self.workspace_level and not self.config.selection.reads_workspace_streams:
            partition = self.config.selection.partition
            self.logger.info(f"{self.name}: read by partition 0 only (this connection is partition {partition.index} "
                             f"of {partition.count}); nothing to read here.")
            return
        where = self.partition_name(stream_slice or {})
        self._local.where = where  # named by the retry logs of this thread's requests
        try:
            for walk in range(1, MAX_WALKS + 1):
                self._local.walk = Walk()
                try:
                    yield from super().read_records(sync_mode, cursor_field, stream_slice, stream_state)
                    return
                except ListingShifted as shift:
                    if walk == MAX_WALKS:
                        raise AirbyteTracedException(
                            message=f"the listing kept changing while it was read ({shift}); try again later.",
                            internal_message=str(shift),
                            failure_type=FailureType.transient_error,
                        ) from None
                    self.logger.warning(
                        f"{self.name} ({where}): the listing changed while it was read ({shift}); "
                        f"reading it again from the first page (walk {walk + 1} of at most {MAX_WALKS})."
                    )
        except AirbyteTracedException as error:
            # One line for the user and for the sync's closing summary; the CDK has already logged
            # the request and response in full (secrets filtered) when it raised.
            message = f"{self.name} ({where}): {error.message or error.internal_message}"
            raise AirbyteTracedException(
                message=message, internal_message=message, failure_type=error.failure_type, exception=error
            ) from error

    def parse_response(
        self,
        response: requests.Response,
        *,
        stream_state: Mapping[str, Any],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        self.cursors.observe_server_time(response.headers.get("Date"))  # before any of the page's records is observed
        self.rate_limit_gate.observe(response.headers)
        body = page_body(response)
        walk = self._walk()
        if self.detect_shifts:
            walk.check_size(body.get("size"))
        values = self.page_items(body, stream_slice or {})
        dropped = new = repeated = 0
        for item in values:
            if not isinstance(item, dict):
                dropped += 1
                continue
            for record in self.transform(item, stream_slice or {}):
                if all(record.get(field) is not None for field in self.key_fields):
                    if self.detect_shifts and not walk.first_time(tuple(record[field] for field in self.key_fields)):
                        if self.repeats_are_shifts:
                            raise ListingShifted(f"{tuple(record[field] for field in self.key_fields)} came twice")
                        repeated += 1
                        continue  # pushed down by newer items: already emitted in this walk
                    new += 1
                    yield record
                else:
                    dropped += 1
        if repeated and not new and not walk.done:
            # Nothing new on a whole page: either a page's worth of items arrived during the walk, or
            # the server ignores ``page`` (next_page_number_url would then ask for it forever).
            raise ListingShifted(f"a whole page of {repeated} item(s) came again")
        if dropped:
            self.logger.warning(
                f"{self.name}: {dropped} item(s) of a page from {urlparse(response.url).path} were not objects or lacked "
                f"a primary key field ({', '.join(self.key_fields)}); they were skipped."
            )

    def page_items(self, body: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> List[Any]:
        """The API objects of one answer: a page's ``values`` ([] when it has none: the error handler
        retries pages without a list). Streams that also read single objects override it."""
        values = body.get("values")
        return values if isinstance(values, list) else []

    def partition_name(self, stream_slice: Mapping[str, Any]) -> str:
        """What a slice reads, for log lines and errors: ``workspace acme`` here; the per-parent
        streams name their parent (``repository acme/api``, ``pull request #7 of repository acme/api``)."""
        return f"workspace {self.config.workspace}"

    @cached_property
    def key_fields(self) -> List[str]:
        """The top-level fields of the primary key; records without them cannot be emitted."""
        key = self.primary_key
        return [key] if isinstance(key, str) else [k if isinstance(k, str) else k[0] for k in key or []]

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        """Decorate (or drop) one API object; yields the record(s) to emit."""
        yield record
