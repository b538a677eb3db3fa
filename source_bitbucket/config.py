"""Parse and validate the connector config once, into a typed object.

Every problem is reported before any request is sent, as an Airbyte ``config_error`` whose
message names the field and the fix. Secrets (tokens, client secrets) never appear in a message.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Tuple
from urllib.parse import urlparse

import pendulum
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.selection import Partition, RepositorySelection

DEFAULT_API_URL = "https://api.bitbucket.org/2.0"
DEFAULT_START_DATE = "2020-01-01T00:00:00Z"
DEFAULT_MAX_WAITING_MINUTES = 60
DEFAULT_NUM_WORKERS = 10
MAX_NUM_WORKERS = 20
PULL_REQUEST_STATES = ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")
PULL_REQUEST_STATE_CHOICES = PULL_REQUEST_STATES + ("ALL",)
API_TOKEN, ACCESS_TOKEN, OAUTH = "api_token", "access_token", "oauth2.0"  # credentials.auth_type
AUTH_TYPES = (API_TOKEN, ACCESS_TOKEN, OAUTH)

_WORKSPACE_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$|^\{[0-9a-fA-F-]{36}\}$")
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PROJECT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_PATTERN = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")
MAX_PARTITIONS = 100


class ConfigError(AirbyteTracedException):
    """A config value the user must fix; surfaces as an Airbyte ``config_error`` trace."""

    def __init__(self, field: str, problem: str) -> None:
        message = f"Config field '{field}': {problem}"
        super().__init__(message=message, internal_message=message, failure_type=FailureType.config_error)
        self.field = field


@dataclass(frozen=True)
class Credentials:
    """How requests authenticate (the spec's ``credentials`` choice).

    Attributes:
        auth_type: ``api_token`` (HTTP basic: ``email`` and ``api_token``), ``access_token`` (HTTP
            Bearer: a workspace, project or repository access token) or ``oauth2.0`` (an OAuth consumer's
            ``client_id`` and ``client_secret``, with a ``refresh_token`` from the authorization-code
            grant, or without one: the client-credentials grant).
        access_token, token_expiry_date: with ``oauth2.0``, the last access token and when it expires
            (ISO 8601), when the config carries them (Airbyte's OAuth flow writes them back).
    """

    auth_type: str
    email: str = ""
    api_token: str = ""
    access_token: str = ""
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""
    token_expiry_date: str = ""

    @property
    def secrets(self) -> Tuple[str, ...]:
        """The secret values of these credentials (masked in every log line)."""
        return tuple(v for v in (self.api_token, self.access_token, self.client_secret, self.refresh_token) if v)


@dataclass(frozen=True)
class BitbucketConfig:
    """The validated connector config.

    Attributes:
        workspace: workspace slug (``bitbucket.org/<workspace>``) or ``{uuid}``.
        credentials: how requests authenticate (``Credentials``); a config with top-level ``email`` and
            ``api_token`` (before the ``credentials`` choice) reads as the ``api_token`` choice.
        start_date: UTC datetime; records older than it are not read.
        pull_request_states: the ``state`` values sent to ``GET .../pullrequests``.
        api_url: API root without a trailing slash, e.g. ``https://api.bitbucket.org/2.0``.
        max_waiting_seconds: how long one request may keep retrying (rate limits, server errors).
        num_workers: repositories read at once by the repository-scoped streams.
        selection: which repositories are read (``repositories``, ``excluded_repositories``, ``projects``,
            ``skip_forks``, ``partition``; see ``source_bitbucket.selection``).
    """

    workspace: str
    credentials: Credentials
    start_date: datetime
    pull_request_states: Tuple[str, ...]
    api_url: str
    max_waiting_seconds: float = DEFAULT_MAX_WAITING_MINUTES * 60
    num_workers: int = DEFAULT_NUM_WORKERS
    selection: RepositorySelection = RepositorySelection()

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], now: datetime | None = None) -> "BitbucketConfig":
        """Validate ``config`` (the JSON given to spec/check/read) and return the typed config.

        Raises:
            ConfigError: naming the first invalid field and how to fix it.
        """
        now = now or datetime.now(timezone.utc)
        return cls(
            workspace=_workspace(config.get("workspace")),
            credentials=_credentials(config),
            start_date=_start_date(DEFAULT_START_DATE if config.get("start_date") in (None, "") else config["start_date"], now),
            pull_request_states=_pull_request_states(config.get("pull_request_state", "ALL")),
            api_url=_api_url(config.get("api_url") or DEFAULT_API_URL),
            max_waiting_seconds=_max_waiting_minutes(config.get("max_waiting_time", DEFAULT_MAX_WAITING_MINUTES)) * 60,
            num_workers=_num_workers(config.get("num_workers", DEFAULT_NUM_WORKERS)),
            selection=RepositorySelection(
                included=_patterns(config.get("repositories"), "repositories"),
                excluded=_patterns(config.get("excluded_repositories"), "excluded_repositories"),
                projects=_project_keys(config.get("projects")),
                skip_forks=_flag(config.get("skip_forks", False), "skip_forks"),
                partition=_partition(config.get("partition")),
            ),
        )


def _workspace(value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise ConfigError("workspace", "must be a string: the workspace slug, e.g. 'acme' for bitbucket.org/acme.")
    if not value or not value.strip():
        raise ConfigError("workspace", "is required: give the workspace slug, e.g. 'acme' for bitbucket.org/acme.")
    value = value.strip()
    if "/" in value or ":" in value:
        raise ConfigError(
            "workspace",
            "looks like a URL or a path; give only the workspace slug, e.g. 'acme' for https://bitbucket.org/acme/.",
        )
    if not _WORKSPACE_SLUG.match(value):
        raise ConfigError("workspace", "is not a valid workspace slug (letters, digits, '-', '_' and '.').")
    return value


def _credentials(config: Mapping[str, Any]) -> Credentials:
    """The ``credentials`` object, or the top-level ``email`` and ``api_token`` of configs written before it."""
    credentials = config.get("credentials")
    if credentials is None and ("email" in config or "api_token" in config):
        return Credentials(API_TOKEN, email=_email(config.get("email"), "email"),
                           api_token=_token(config.get("api_token"), "api_token", _API_TOKEN_HELP))
    if credentials is None:
        raise ConfigError("credentials", f"is required: choose one of {', '.join(AUTH_TYPES)} (auth_type) and fill in its fields.")
    if not isinstance(credentials, Mapping):
        raise ConfigError("credentials", "must be an object with 'auth_type' and that choice's fields.")
    auth_type = credentials.get("auth_type")
    if auth_type is None:  # the fields tell the choice
        auth_type = OAUTH if "client_id" in credentials else ACCESS_TOKEN if "access_token" in credentials else API_TOKEN
    if auth_type == API_TOKEN:
        return Credentials(API_TOKEN, email=_email(credentials.get("email"), "credentials.email"),
                           api_token=_token(credentials.get("api_token"), "credentials.api_token", _API_TOKEN_HELP))
    if auth_type == ACCESS_TOKEN:
        return Credentials(ACCESS_TOKEN, access_token=_token(credentials.get("access_token"), "credentials.access_token",
                                                             _ACCESS_TOKEN_HELP))
    if auth_type == OAUTH:
        refresh_token = credentials.get("refresh_token")
        expiry = credentials.get("token_expiry_date")
        return Credentials(
            OAUTH,
            client_id=_token(credentials.get("client_id"), "credentials.client_id", _OAUTH_HELP),
            client_secret=_token(credentials.get("client_secret"), "credentials.client_secret", _OAUTH_HELP),
            refresh_token=_token(refresh_token, "credentials.refresh_token", _OAUTH_HELP) if refresh_token else "",
            access_token=credentials.get("access_token") if isinstance(credentials.get("access_token"), str) else "",
            token_expiry_date=expiry if isinstance(expiry, str) and _is_date_time(expiry) else "",
        )
    raise ConfigError("credentials.auth_type", f"'{auth_type}' is not one of {', '.join(AUTH_TYPES)}.")


_API_TOKEN_HELP = "create an API token with scopes at https://id.atlassian.com/manage-profile/security/api-tokens"
_ACCESS_TOKEN_HELP = "create a workspace, project or repository access token in its Settings > Access tokens"
_OAUTH_HELP = "copy it from the OAuth consumer (workspace Settings > OAuth consumers)"


def _is_date_time(value: str) -> bool:
    """Whether ``value`` is a date-time pendulum can read (a stored token expiry that cannot be read is ignored:
    the token is then refreshed at once)."""
    try:
        return isinstance(pendulum.parse(value), datetime)
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError):
        return False


def _email(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise ConfigError(
            field,
            "must be the email address of your Atlassian account (not the Bitbucket username), e.g. me@example.com.",
        )
    return value.strip()


def _token(value: Any, field: str, help: str) -> str:  # noqa: A002 - the fix the message gives
    """A secret as pasted: a non-empty printable ASCII string without surrounding whitespace."""
    if value is not None and not isinstance(value, str):
        raise ConfigError(field, "must be a string, as Bitbucket shows it.")
    if not value or not value.strip():
        raise ConfigError(field, f"is empty: {help}.")
    if value != value.strip():
        raise ConfigError(field, "has leading or trailing whitespace; paste it without spaces or newlines.")
    if not value.isascii() or not value.isprintable():
        raise ConfigError(field, "contains characters Bitbucket never puts in one; paste it again as shown.")
    return value


def _start_date(value: Any, now: datetime) -> datetime:
    if not isinstance(value, str) or not _DATE_PREFIX.match(value.strip()):
        raise ConfigError("start_date", f"'{value}' is not an ISO 8601 date-time; use e.g. 2023-01-01T00:00:00Z.")
    try:
        parsed = pendulum.parse(str(value))
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError):
        parsed = None
    if not isinstance(parsed, datetime):
        raise ConfigError("start_date", f"'{value}' is not an ISO 8601 date-time; use e.g. 2023-01-01T00:00:00Z.")
    try:
        parsed = parsed.astimezone(timezone.utc)
    except (OverflowError, OSError, ValueError):  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise ConfigError(
            "start_date",
            f"'{value}' is out of range: in UTC it falls before year 1 or after year 9999; use e.g. 2023-01-01T00:00:00Z.",
        ) from None
    if parsed > now:
        raise ConfigError("start_date", f"'{value}' is in the future; use a date in the past or leave it empty.")
    # A plain datetime (not pendulum's), built from the fields: no float timestamp (imprecise far from 1970).
    return datetime(parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute, parsed.second,
                    parsed.microsecond, tzinfo=timezone.utc)


def _pull_request_states(value: Any) -> Tuple[str, ...]:
    """One state, ``ALL``, or a list of states (``["OPEN", "MERGED"]``), as the ``state`` values to send."""
    values = value if isinstance(value, list) else [value]
    if not values or any(v not in PULL_REQUEST_STATE_CHOICES for v in values):
        raise ConfigError("pull_request_state", f"'{value}' is not one of {', '.join(PULL_REQUEST_STATE_CHOICES)} "
                                                "(in capitals), nor a list of them.")
    if "ALL" in values:
        return PULL_REQUEST_STATES
    return tuple(s for s in PULL_REQUEST_STATES if s in values)  # the canonical order, each once


def _patterns(value: Any, field: str) -> Tuple[str, ...]:
    if value in (None, "", []):
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and _PATTERN.match(v.strip()) for v in value):
        raise ConfigError(field, "must be a list of repository slugs or glob patterns, e.g. [\"api-gateway\", \"data-*\"].")
    return tuple(v.strip() for v in value)


def _project_keys(value: Any) -> Tuple[str, ...]:
    if value in (None, "", []):
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and _PROJECT_KEY.match(v.strip()) for v in value):
        raise ConfigError("projects", "must be a list of project keys (letters, digits and '_', as in the project's "
                                      "settings), e.g. [\"PLAT\", \"DATA\"].")
    return tuple(dict.fromkeys(v.strip() for v in value))


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"'{value}' must be true or false.")
    return value


def _partition(value: Any) -> Optional[Partition]:
    if value in (None, {}):
        return None
    usage = (f"must be {{\"index\": i, \"count\": n}} with whole numbers, 1 <= n <= {MAX_PARTITIONS} and "
             "0 <= i < n (one connection per index), e.g. {\"index\": 0, \"count\": 3}.")
    if not isinstance(value, Mapping):
        raise ConfigError("partition", usage)
    index, count = value.get("index"), value.get("count")
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (index, count)) or not 0 <= index < count <= MAX_PARTITIONS:
        raise ConfigError("partition", usage)
    return None if count == 1 else Partition(index, count)


def _api_url(value: Any) -> str:
    parsed = urlparse(str(value).strip())
    if parsed.scheme not in ("https", "http") or not parsed.hostname or parsed.query or parsed.fragment or " " in str(value).strip():
        raise ConfigError("api_url", f"'{value}' is not an API root URL; leave it empty to use {DEFAULT_API_URL}.")
    try:
        parsed.port
    except ValueError:
        raise ConfigError("api_url", f"'{value}' has a port that is not a number; leave it empty to use {DEFAULT_API_URL}.") from None
    if parsed.scheme == "http" and not _is_loopback(parsed.hostname):
        raise ConfigError(
            "api_url", "must use https (plain http is only allowed for a local sandbox on 127.0.0.1/localhost)."
        )
    return str(value).strip().rstrip("/")


def same_api_host(link: str, api_url: str) -> bool:
    """Whether ``link`` (e.g. a page's ``next``) points at the same server as ``api_url``, so that
    credentials may be sent to it.

    Compared as an origin, not as strings: the scheme, the host lower-cased (hosts are
    case-insensitive) and the effective port (443 for https and 80 for http when none is
    written), so ``https://API.bitbucket.org:443/2.0`` accepts Bitbucket's
    ``https://api.bitbucket.org/...`` links. Two loopback spellings (``localhost``,
    ``127.0.0.0/8``, ``::1``) with the same scheme and port count as one host: a local sandbox
    or proxy may answer with either, and credentials stay on this machine.
    """
    a, b = urlparse(str(link)), urlparse(str(api_url))
    try:
        ports = (a.port or _DEFAULT_PORTS.get(a.scheme), b.port or _DEFAULT_PORTS.get(b.scheme))
    except ValueError:  # a port that is not a number
        return False
    if a.scheme != b.scheme or ports[0] != ports[1] or not a.hostname or not b.hostname:
        return False
    return a.hostname == b.hostname or (_is_loopback(a.hostname) and _is_loopback(b.hostname))


_DEFAULT_PORTS = {"https": 443, "http": 80}


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _max_waiting_minutes(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1440:
        raise ConfigError("max_waiting_time", f"'{value}' must be a number of minutes above 0 and at most 1440 (default 60).")
    return float(value)


def _num_workers(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUM_WORKERS:
        raise ConfigError("num_workers", f"'{value}' must be a whole number from 1 to {MAX_NUM_WORKERS} (default {DEFAULT_NUM_WORKERS}).")
    return value
