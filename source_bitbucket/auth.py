"""The authenticator of each ``credentials`` choice, and the secrets it must keep out of logs.

* ``api_token``: HTTP basic, the Atlassian account email and the API token.
* ``access_token``: ``Authorization: Bearer`` with a workspace, project or repository access token.
* ``oauth2.0``: ``Authorization: Bearer`` with an OAuth consumer's access token, from the token endpoint
  ``https://bitbucket.org/site/oauth2/access_token`` (the consumer's key and secret as HTTP basic
  credentials). With a ``refresh_token`` (authorization-code grant): access tokens last an hour and
  refresh tokens rotate on use, so the new refresh token is written back to the config with Airbyte's
  CONNECTOR_CONFIG control message (``SingleUseRefreshTokenOauth2Authenticator``). Without one: the
  client-credentials grant. Either way the CDK refreshes the token before it expires, and once more
  when Bitbucket answers a request 401 (``errors.BitbucketErrorHandler``: REFRESH_TOKEN_THEN_RETRY).

Source: https://developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication
"""

from __future__ import annotations

import base64
from typing import Any, Mapping, MutableMapping, Union
from urllib.parse import urlparse

from airbyte_cdk.sources.streams.http.requests_native_auth import (
    BasicHttpAuthenticator,
    Oauth2Authenticator,
    SingleUseRefreshTokenOauth2Authenticator,
    TokenAuthenticator,
)
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets

from source_bitbucket.config import ACCESS_TOKEN, API_TOKEN, DEFAULT_API_URL, BitbucketConfig

BITBUCKET_TOKEN_URL = "https://bitbucket.org/site/oauth2/access_token"


def token_url(api_url: str) -> str:
    """The OAuth token endpoint for ``api_url``: Bitbucket's for Bitbucket's API, else the same path on the
    configured host (a local sandbox): credentials only ever go to the API's host and Bitbucket's."""
    if api_url == DEFAULT_API_URL:
        return BITBUCKET_TOKEN_URL
    parsed = urlparse(api_url)
    return f"{parsed.scheme}://{parsed.netloc}/site/oauth2/access_token"


class RefreshTokenAuthenticator(SingleUseRefreshTokenOauth2Authenticator):
    """Authorization-code grant: rotating refresh tokens, each written back to the config (and masked)."""

    def set_refresh_token(self, new_refresh_token: str) -> None:
        add_to_secrets(new_refresh_token)
        super().set_refresh_token(new_refresh_token)


Authenticator = Union[BasicHttpAuthenticator, TokenAuthenticator, Oauth2Authenticator, RefreshTokenAuthenticator]


def authenticator(config: BitbucketConfig, raw_config: Mapping[str, Any]) -> Authenticator:
    """The requests authenticator of ``config.credentials``; every secret it sends is added to the
    secrets the CDK masks in logs. ``raw_config`` is the config object as given: the refresh-token
    flow writes the rotated refresh token, the access token and its expiry into its ``credentials``
    and emits it as a CONNECTOR_CONFIG control message."""
    credentials = config.credentials
    for secret in credentials.secrets:
        add_to_secrets(secret)
    if credentials.auth_type == API_TOKEN:
        # The Authorization header carries base64(email:api_token): mask it too (e.g. in --debug request logs).
        add_to_secrets(base64.b64encode(f"{credentials.email}:{credentials.api_token}".encode()).decode())
        return BasicHttpAuthenticator(username=credentials.email, password=credentials.api_token)
    if credentials.auth_type == ACCESS_TOKEN:
        return TokenAuthenticator(token=credentials.access_token)
    consumer = base64.b64encode(f"{credentials.client_id}:{credentials.client_secret}".encode()).decode()
    add_to_secrets(consumer)
    common = {"token_refresh_endpoint": token_url(config.api_url), "client_id": credentials.client_id,
              "client_secret": credentials.client_secret, "refresh_request_headers": {"Authorization": f"Basic {consumer}"}}
    if credentials.refresh_token:
        writable = _writable(raw_config)
        if not credentials.token_expiry_date:  # absent or unreadable: refresh at once (the CDK would fail to parse it)
            writable["credentials"]["token_expiry_date"] = ""
        return RefreshTokenAuthenticator(connector_config=writable, **common)
    return Oauth2Authenticator(refresh_token=None, grant_type="client_credentials", **common)  # type: ignore[arg-type]


def _writable(raw_config: Mapping[str, Any]) -> MutableMapping[str, Any]:
    """``raw_config`` itself when it can take the rotated tokens (the entrypoint's dict), else a copy."""
    if isinstance(raw_config, dict) and isinstance(raw_config.get("credentials"), dict):
        return raw_config
    return {**raw_config, "credentials": dict(raw_config.get("credentials") or {})}
