"""Following Bitbucket's pages, and noticing when a page-numbered listing shifts under the reader.

Every list answers ``{"values": [...], "next": <url>}``; ``next`` is absent on the last page and
already carries every query parameter (``q``, ``sort``, ``state``, ``pagelen``...), so it is
followed verbatim and nothing is re-appended. Commits page with an opaque ``page=<token>``, the
other endpoints with page numbers. Source:
https://developer.atlassian.com/cloud/bitbucket/rest/intro/#pagination
"""

from __future__ import annotations

from typing import Any, Mapping, Optional
from urllib.parse import parse_qsl, urlencode, urlparse, urlsplit, urlunsplit

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.config import same_api_host
from source_bitbucket.errors import foreign_link_message, json_body

MAX_WALKS = 3  # walks of one listing before a listing that keeps shifting fails the slice


def page_body(response: requests.Response) -> Mapping[str, Any]:
    """The decoded JSON object of a list page ({} when the body is not a JSON object)."""
    body = json_body(response)
    return body if isinstance(body, Mapping) else {}


def next_page_number_url(request_url: str, body: Mapping[str, Any]) -> Optional[str]:
    """The page after ``body`` of a page-number listing, built on the URL that asked for it: same
    host, path and parameters, ``page`` + 1. None on the last page: an answer without ``values``,
    or ``page * pagelen >= size`` when the body gives ``pagelen`` and ``size``.

    For endpoints whose ``next`` link cannot be followed verbatim: the pipelines listing's ``next``
    drops ``sort`` (following it reverts page 2 onwards to oldest first, silently) and was absent
    altogether in 2020-21 (BCLOUD-20639); see ``shared/docs/bitbucket-api-more-endpoints.md`` 2.3.
    """
    values = body.get("values")
    if not isinstance(values, list) or not values:
        return None
    parts = urlsplit(request_url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    asked = [value for key, value in params if key == "page"]
    page = int(asked[-1]) if asked and asked[-1].isdigit() else 1
    pagelen, size = body.get("pagelen"), body.get("size")
    if all(isinstance(n, int) and not isinstance(n, bool) for n in (pagelen, size)) and pagelen > 0 and page * pagelen >= size:
        return None
    params = [(key, value) for key, value in params if key != "page"] + [("page", str(page + 1))]
    return urlunsplit(parts._replace(query=urlencode(params)))


class ListingShifted(Exception):
    """A page-numbered listing changed under the reader: the slice is read again from its first
    page (see ``BitbucketStream.read_records``)."""


class Walk:
    """What one walk through a listing has seen: the next links followed, the first ``size``,
    the keys read; ``done`` once the reader has what it needs (no further page is asked for);
    ``last`` for the reader's own use (e.g. the last date of an ordered listing). One per slice and
    thread."""

    def __init__(self) -> None:
        self.followed: set = set()
        self.size: Optional[int] = None
        self.keys: set = set()
        self.done = False
        self.last: Any = None

    def follow(self, next_url: str, current_url: Optional[str], api_url: str) -> str:
        """Accept ``next_url`` as the next page to read, and return it.

        Raises:
            AirbyteTracedException: the link points to another server than ``api_url``
                (``same_api_host``: credentials only go to the configured API), or repeats a page
                already read in this walk (a pagination loop).
        """
        if not same_api_host(next_url, api_url):
            raise _pagination_error(foreign_link_message(next_url, api_url))
        if next_url in self.followed or next_url == current_url:
            raise _pagination_error(
                f"Bitbucket's next-page link repeats a page already read ({urlparse(next_url).path}); stopping instead of looping."
            )
        self.followed.add(next_url)
        return next_url

    def check_size(self, size: Any) -> None:
        """A listing whose ``size`` shrank lost an item before the read position: raise ListingShifted."""
        if not isinstance(size, int) or isinstance(size, bool):
            return
        if self.size is not None and size < self.size:
            raise ListingShifted(f"it shrank from {self.size} to {size} items")
        self.size = size

    def first_time(self, key: tuple) -> bool:
        """Note an item's key; False when it came before in this walk (in an ascending listing: it
        moved behind the read position, see ``BitbucketStream.repeats_are_shifts``)."""
        if key in self.keys:
            return False
        self.keys.add(key)
        return True


def _pagination_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
