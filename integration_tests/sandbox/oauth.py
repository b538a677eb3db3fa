"""The sandbox's credentials besides the API token: access tokens and an OAuth 2.0 consumer.

* ``access_tokens``: Bearer tokens accepted as they are (workspace, project or repository access tokens).
* ``TokenIssuer``: ``POST /site/oauth2/access_token`` as on bitbucket.org, with the consumer's key and
  secret as HTTP basic credentials and a form body: ``grant_type=refresh_token`` (the refresh token is
  single use: the answer carries a new one and the old one is refused afterwards, as Bitbucket's rotate)
  or ``grant_type=client_credentials``. Answers ``{"access_token", "token_type": "bearer", "expires_in",
  "refresh_token", "scopes"}``; refusals are 400 ``{"error": "invalid_grant" | "unsupported_grant_type"}``
  or 401 ``{"error": "invalid_client"}``. An issued access token is refused with a 401 once it has
  expired: after ``lifetime_s`` seconds, or after ``lifetime_requests`` API requests (to expire one in
  the middle of a sync).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple
from urllib.parse import parse_qs

TOKEN_PATH = "/site/oauth2/access_token"
EXPIRED = "Access token expired. Use your refresh token to obtain a new access token."


@dataclass
class Issued:
    expires_at: float
    requests_left: Optional[int]


@dataclass
class TokenIssuer:
    """An OAuth consumer ``client_id`` / ``client_secret`` and the tokens it has issued.

    ``refresh_tokens``: the refresh tokens that may be used (each once); ``grants``: the grant types seen.
    """

    client_id: str
    client_secret: str
    refresh_tokens: set = field(default_factory=set)
    lifetime_s: int = 3600
    lifetime_requests: Optional[int] = None
    grants: list = field(default_factory=list)
    _issued: Dict[str, Issued] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, authorization: Optional[str], body: bytes) -> Tuple[int, bytes]:
        """The token endpoint's status and JSON body for one request."""
        if not self._client_ok(authorization):
            return 401, _json({"error": "invalid_client", "error_description": "Invalid client credentials"})
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        with self._lock:
            self.grants.append(grant)
            if grant == "refresh_token":
                if form.get("refresh_token") not in self.refresh_tokens:
                    return 400, _json({"error": "invalid_grant", "error_description": "Invalid refresh_token"})
                self.refresh_tokens.discard(form["refresh_token"])
            elif grant != "client_credentials":
                return 400, _json({"error": "unsupported_grant_type", "error_description": f"Unsupported grant type: {grant}"})
            access, refresh = "sbx-oauth-" + secrets.token_hex(8), "sbx-refresh-" + secrets.token_hex(8)
            self.refresh_tokens.add(refresh)
            self._issued[access] = Issued(time.time() + self.lifetime_s, self.lifetime_requests)
        return 200, _json({"access_token": access, "token_type": "bearer", "expires_in": self.lifetime_s,
                           "refresh_token": refresh, "scopes": "account repository pullrequest pipeline project"})

    def accepts(self, access_token: str) -> bool:
        """Whether an issued access token is still valid (each call counts as one API request)."""
        with self._lock:
            issued = self._issued.get(access_token)
            if issued is None or time.time() >= issued.expires_at:
                return False
            if issued.requests_left is not None:
                if issued.requests_left <= 0:
                    return False
                issued.requests_left -= 1
            return True

    @property
    def issued(self) -> int:
        """How many access tokens were issued so far."""
        return len(self._issued)

    def _client_ok(self, authorization: Optional[str]) -> bool:
        if not authorization or not authorization.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(authorization[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.client_id and password == self.client_secret


def _json(body) -> bytes:
    return json.dumps(body).encode()
