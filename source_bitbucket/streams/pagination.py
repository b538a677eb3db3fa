"""Following Bitbucket's pages, and noticing when a page-numbered listing shifts under the reader.

Every list answers ``{"values": [...], "next": <url>}``; ``next`` is absent on the last page and
already carries every query parameter (``q``, ``sort``, ``state``, ``pagelen``...), so it is
followed verbatim and nothing is re-appended. Commits page with an opaque ``page=<token>``, the
other endpoints with page numbers. Source:
https://developer.atlassian.com/cloud/bitbucket/rest/intro/#pagination
"""

from __future__ import annotations

from typing import Any, Mapping, Optional
from urllib.parse import urlparse

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


class ListingShifted(Exception):
    """A page-numbered listing changed under the reader: the slice is read again from its first
    page (see ``BitbucketStream.read_records``)."""


class Walk:
    """What one walk through a listing has seen: the next links followed, the first ``size``,
    the keys read. One per slice and thread."""

    def __init__(self) -> None:
        self.followed: set = set()
        self.size: Optional[int] = None
        self.keys: set = set()

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

    def check_new(self, key: tuple) -> None:
        """An item that comes twice moved behind the read position: raise ListingShifted."""
        if key in self.keys:
            raise ListingShifted(f"{key} came twice")
        self.keys.add(key)


def _pagination_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
