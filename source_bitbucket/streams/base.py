"""The shared HttpStream of every Bitbucket stream: URL, auth, next-link paging, errors, schema.

Pagination (narrative "Pagination"): every list answers ``{"values": [...], "next": <url>}``;
``next`` is absent on the last page and already carries every query parameter (``q``,
``sort``, ``state``, ``pagelen``...), so it is followed verbatim and nothing is re-appended.
Commits page with an opaque ``page=<token>``; the other endpoints with page numbers.
"""

from __future__ import annotations

import copy
from abc import ABC
from datetime import datetime
from typing import Any, Iterable, Mapping, MutableMapping, Optional
from urllib.parse import urlparse

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.config import BitbucketConfig
from source_bitbucket.errors import BitbucketErrorHandler
from source_bitbucket.state import RepositoryCursors

_BODY = "_bitbucket_body"


def page_body(response: requests.Response) -> Mapping[str, Any]:
    """The decoded JSON body of a list page, parsed once per response (cached on it).

    Raises:
        AirbyteTracedException: the body is not JSON (e.g. an HTML error page or a truncated body).
    """
    body = getattr(response, _BODY, None)
    if body is None:
        try:
            body = response.json()
        except ValueError:
            raise AirbyteTracedException(
                message=f"Bitbucket answered {response.request.method} {_path_of(response.url)} with a body that is not JSON (HTTP {response.status_code}).",
                failure_type=FailureType.transient_error,
            ) from None
        if not isinstance(body, Mapping):
            body = {}
        setattr(response, _BODY, body)
    return body


def _path_of(url: str) -> str:
    return urlparse(url).path


class BitbucketStream(HttpStream, ABC):
    """Base of all streams: ``{api_url}/...``, HTTP basic auth, ``next``-link pagination.

    Subclasses set ``name``, ``primary_key``, ``cursor_field``, ``page_size`` (the endpoint's
    maximum ``pagelen``) and ``path``; they may override ``request_params`` for the first page
    and ``transform`` to decorate each record.
    """

    page_size: int = 100
    skip_statuses: frozenset = frozenset()

    def __init__(self, config: BitbucketConfig, sync_started_at: datetime, **kwargs: Any) -> None:
        self.config = config
        self.sync_started_at = sync_started_at
        super().__init__(**kwargs)
        self.cursors = RepositoryCursors(self.cursor_field or "", config.start_date, sync_started_at)
        self._state: MutableMapping[str, Any] = {}
        self._initial_state: Mapping[str, Any] = {}

    @property
    def state(self) -> MutableMapping[str, Any]:
        """The incoming state, as given at the start of the sync (the CDK sets it once)."""
        return self._state

    @state.setter
    def state(self, value: Mapping[str, Any]) -> None:
        self._state = dict(value or {})
        self._initial_state = copy.deepcopy(self._state)

    @property
    def url_base(self) -> str:
        return self.config.api_url + "/"

    def get_error_handler(self) -> ErrorHandler:
        return BitbucketErrorHandler(
            logger=self.logger, stream_name=self.name, skip_statuses=self.skip_statuses, workspace=self.config.workspace
        )

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

    def first_page_path(self, stream_slice: Mapping[str, Any]) -> str:
        """The endpoint path relative to ``api_url``, e.g. ``repositories/acme``."""
        raise NotImplementedError

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        """``{"next": <absolute url>}`` from the body, or None on the last page or an ignored error."""
        if not response.ok:
            return None
        next_url = page_body(response).get("next")
        return {"next": next_url} if next_url else None

    def parse_response(
        self,
        response: requests.Response,
        *,
        stream_state: Mapping[str, Any],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        values = page_body(response).get("values")
        if not isinstance(values, list):
            self.logger.warning(f"{self.name}: a page from {_path_of(response.url)} has no 'values' list; nothing read from it.")
            return
        for record in values:
            if isinstance(record, dict):
                yield from self.transform(record, stream_slice or {})

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        """Decorate (or drop) one API object; yields the record(s) to emit."""
        yield record
