"""What the sandbox's routes speak: one :class:`Request` in, one :class:`Response` out, no sockets.

``ApiError`` raised by a route becomes Bitbucket's error body (``error_response``); ``NO_API`` is the
detail of Bitbucket's 404 for a path it has no API at.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote, urlencode

NO_API = ("There is no API hosted at this URL.\n\nFor information about our API's, please refer to the "
          "documentation at: https://developer.atlassian.com/bitbucket/api/2/reference/")


class Response:
    """Status, body bytes, content type and extra headers of one answer."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json", headers=None):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers: Dict[str, str] = dict(headers or {})


class ApiError(Exception):
    """Raised by route code; becomes ``{"type": "error", "error": {"message": ..., "detail": ...}}``."""

    def __init__(self, status: int, message: str, detail: Any = None):
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


def json_response(status: int, obj: Any) -> Response:
    """Serialise ``obj`` as an ``application/json`` answer."""
    return Response(status, json.dumps(obj).encode())


def error_response(status: int, message: str, detail: Any = None) -> Response:
    """The standard Bitbucket error body."""
    err: Dict[str, Any] = {"message": message}
    if detail is not None:
        err["detail"] = detail
    return json_response(status, {"type": "error", "error": err})


def api_segments(path: str) -> Optional[List[str]]:
    """The unquoted segments of a request path after ``/2.0/`` (``[]`` for ``/2.0`` itself), or None
    for a path outside the API."""
    parts = [unquote(p) for p in path.split("/") if p]
    return parts[1:] if parts and parts[0] == "2.0" else None


class Request:
    """One API request as the routes see it: raw path, ordered query pairs, origin for links."""

    def __init__(self, method: str, path: str, pairs: Sequence[Tuple[str, str]], origin: str):
        self.method, self.path, self.pairs, self.origin = method, path, list(pairs), origin

    def all(self, name: str) -> List[str]:
        """Every value of a (repeatable) parameter."""
        return [v for k, v in self.pairs if k == name]

    def get(self, name: str) -> Optional[str]:
        """The first value of a parameter, or None."""
        values = self.all(name)
        return values[0] if values else None

    def int_param(self, name: str, default: int, message: str) -> int:
        """An integer parameter; a non-integer answers 400 ``message``."""
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ApiError(400, message) from None

    def link_to_page(self, page: int, pagelen: int) -> str:
        """This request's URL with ``page`` replaced: a page-number list's ``next``/``previous``."""
        return self.link(page=str(page))

    def link(self, **replace: str) -> str:
        """Absolute URL of this request with some parameters replaced (or appended)."""
        pairs, done = [], set()
        for key, value in self.pairs:
            if key in replace:
                if key in done:
                    continue
                value, _ = replace[key], done.add(key)
            pairs.append((key, value))
        pairs += [(k, v) for k, v in replace.items() if k not in done]
        return f"{self.origin}{self.path}?{urlencode(pairs)}"
