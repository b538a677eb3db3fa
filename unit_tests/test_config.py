"""BitbucketConfig.from_mapping: every bad value is a ConfigError naming its field, never the token."""

from datetime import datetime, timedelta, timezone

import pytest
from airbyte_cdk.models import FailureType

from source_bitbucket.config import ConfigError, BitbucketConfig, same_api_host

TOKEN = "ATATT3xFfGF0-distinctive-secret-9c41e"
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
VALID = {"workspace": "acme", "email": "dev@example.com", "api_token": TOKEN}


def build(**changes):
    """VALID with ``changes`` applied; a value of ``...`` removes the key."""
    config = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            config.pop(key, None)
        else:
            config[key] = value
    return config


BAD_CONFIGS = [
    ("workspace", {"workspace": ...}, "workspace-missing"),
    ("workspace", {"workspace": ""}, "workspace-empty"),
    ("workspace", {"workspace": "   "}, "workspace-blank"),
    ("workspace", {"workspace": "https://bitbucket.org/acme/"}, "workspace-url"),
    ("workspace", {"workspace": "acme/repo"}, "workspace-slash"),
    ("workspace", {"workspace": "ac me"}, "workspace-space"),
    ("email", {"email": ...}, "email-missing"),
    ("email", {"email": "dev"}, "email-username"),
    ("email", {"email": "dev@localhost"}, "email-no-domain"),
    ("api_token", {"api_token": ...}, "token-missing"),
    ("api_token", {"api_token": ""}, "token-empty"),
    ("api_token", {"api_token": "   \t"}, "token-whitespace"),
    ("api_token", {"api_token": TOKEN + "\n"}, "token-trailing-newline"),
    ("api_token", {"api_token": " " + TOKEN}, "token-leading-space"),
    ("start_date", {"start_date": "yesterday-ish"}, "start-date-garbage"),
    ("start_date", {"start_date": "2024-13-45T00:00:00Z"}, "start-date-invalid"),
    ("start_date", {"start_date": "2024-06-02T00:00:00Z"}, "start-date-future"),
    ("start_date", {"start_date": "2024-06-01T13:00:00+00:00"}, "start-date-future-same-day"),
    ("start_date", {"start_date": "0001-01-01T00:00:00+01:00"}, "start-date-before-year-1-in-utc"),
    ("start_date", {"start_date": "0001-01-01T00:00:00+14:00"}, "start-date-far-before-year-1-in-utc"),
    ("start_date", {"start_date": "9999-12-31T23:59:59-01:00"}, "start-date-after-year-9999-in-utc"),
    ("pull_request_state", {"pull_request_state": "CLOSED"}, "pr-state-unknown"),
    ("pull_request_state", {"pull_request_state": ""}, "pr-state-empty"),
    ("api_url", {"api_url": "http://api.bitbucket.org/2.0"}, "api-url-http-public"),
    ("api_url", {"api_url": "http://10.0.0.1/2.0"}, "api-url-http-private-ip"),
    ("api_url", {"api_url": "http://localhost.evil.example/2.0"}, "api-url-http-localhost-lookalike"),
    ("api_url", {"api_url": "api.bitbucket.org/2.0"}, "api-url-no-scheme"),
    ("api_url", {"api_url": "not a url"}, "api-url-not-url"),
    ("api_url", {"api_url": "ftp://api.bitbucket.org/2.0"}, "api-url-ftp"),
    ("api_url", {"api_url": "https://"}, "api-url-no-host"),
]


@pytest.mark.parametrize("field,changes", [pytest.param(f, c, id=i) for f, c, i in BAD_CONFIGS])
def test_bad_config_raises_config_error_naming_the_field(field, changes):
    with pytest.raises(ConfigError) as caught:
        BitbucketConfig.from_mapping(build(**changes), now=NOW)
    error = caught.value
    assert error.field == field
    assert error.failure_type == FailureType.config_error
    assert f"'{field}'" in error.message
    for text in (error.message, error.internal_message, str(error)):
        assert TOKEN not in text


def test_first_invalid_field_is_reported_without_the_token():
    # workspace is checked first; the (valid) token must still not leak into the message.
    with pytest.raises(ConfigError) as caught:
        BitbucketConfig.from_mapping(build(workspace="https://bitbucket.org/acme/", email="nope"), now=NOW)
    assert caught.value.field == "workspace"
    assert TOKEN not in caught.value.message


def test_defaults():
    config = BitbucketConfig.from_mapping(VALID, now=NOW)
    assert config.workspace == "acme"
    assert config.credentials.email == "dev@example.com" and config.credentials.auth_type == "api_token"
    assert config.credentials.api_token == TOKEN
    assert config.start_date == datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert config.start_date.utcoffset() == timedelta(0)
    assert config.pull_request_states == ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")
    assert config.api_url == "https://api.bitbucket.org/2.0"


def test_default_now_is_the_real_clock():
    # Without ``now``, a date a day in the future must still be rejected.
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(ConfigError) as caught:
        BitbucketConfig.from_mapping(build(start_date=tomorrow))
    assert caught.value.field == "start_date"


@pytest.mark.parametrize(
    "value,expected",
    [
        ("MERGED", ("MERGED",)),
        ("DECLINED", ("DECLINED",)),
        ("SUPERSEDED", ("SUPERSEDED",)),
        ("ALL", ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")),
    ],
)
def test_pull_request_state(value, expected):
    assert BitbucketConfig.from_mapping(build(pull_request_state=value), now=NOW).pull_request_states == expected


@pytest.mark.parametrize("value", ["merged", " Open ", "all", 1, None])
def test_pull_request_state_is_exactly_one_of_the_spec_values(value):
    """As the spec's enum: check (which also applies the spec) and read agree."""
    with pytest.raises(ConfigError) as raised:
        BitbucketConfig.from_mapping(build(pull_request_state=value), now=NOW)
    assert raised.value.field == "pull_request_state"


@pytest.mark.parametrize(
    "field,value",
    [("start_date", False), ("start_date", "12:00"), ("start_date", 20200101), ("workspace", 123), ("api_token", 42),
     ("api_token", "tökén€"), ("api_url", "https://api.bitbucket.org/2.0?x=1"), ("api_url", "https://api.bitbucket.org/2 .0")],
)
def test_wrong_types_and_shapes_name_the_field(field, value):
    with pytest.raises(ConfigError) as raised:
        BitbucketConfig.from_mapping(build(**{field: value}), now=NOW)
    assert raised.value.field == field


def test_an_ancient_start_date_is_written_with_four_year_digits():
    from source_bitbucket.dates import format_datetime

    parsed = BitbucketConfig.from_mapping(build(start_date="0001-01-01T00:00:00Z"), now=NOW).start_date
    assert format_datetime(parsed) == "0001-01-01T00:00:00.000000+00:00"


@pytest.mark.parametrize(
    "api_url,expected",
    [
        ("http://127.0.0.1:8080/2.0", "http://127.0.0.1:8080/2.0"),
        ("http://localhost:8080/2.0/", "http://localhost:8080/2.0"),
        ("http://[::1]:8080/2.0", "http://[::1]:8080/2.0"),
        ("https://api.bitbucket.org/2.0/", "https://api.bitbucket.org/2.0"),
        ("https://bitbucket.example.internal/api/2.0//", "https://bitbucket.example.internal/api/2.0"),
        ("", "https://api.bitbucket.org/2.0"),
    ],
)
def test_good_api_url(api_url, expected):
    assert BitbucketConfig.from_mapping(build(api_url=api_url), now=NOW).api_url == expected


def test_start_date_with_offset_is_converted_to_utc():
    config = BitbucketConfig.from_mapping(build(start_date="2023-03-01T02:30:00+05:30"), now=NOW)
    assert config.start_date == datetime(2023, 2, 28, 21, 0, tzinfo=timezone.utc)
    assert config.start_date.utcoffset() == timedelta(0)
    assert config.start_date.isoformat() == "2023-02-28T21:00:00+00:00"


def test_start_date_just_before_now_is_accepted():
    config = BitbucketConfig.from_mapping(build(start_date="2024-06-01T11:59:59Z"), now=NOW)
    assert config.start_date == datetime(2024, 6, 1, 11, 59, 59, tzinfo=timezone.utc)


def test_workspace_uuid_and_whitespace():
    uuid = "{0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0}"
    assert BitbucketConfig.from_mapping(build(workspace=uuid), now=NOW).workspace == uuid
    assert BitbucketConfig.from_mapping(build(workspace="  acme-team_2.x "), now=NOW).workspace == "acme-team_2.x"


def test_email_is_stripped():
    assert BitbucketConfig.from_mapping(build(email=" dev@example.com "), now=NOW).credentials.email == "dev@example.com"


def test_config_is_immutable():
    config = BitbucketConfig.from_mapping(VALID, now=NOW)
    with pytest.raises(Exception):
        config.credentials = None  # type: ignore[misc]


def test_empty_start_date_uses_the_default():
    config = BitbucketConfig.from_mapping(build(start_date=""), now=NOW)
    assert config.start_date == datetime(2020, 1, 1, tzinfo=timezone.utc)


# ----------------------------------------------------------------------------- same_api_host
@pytest.mark.parametrize("link, api_url", [
    ("https://api.bitbucket.org/2.0/repositories/acme?page=2", "https://API.bitbucket.org/2.0"),
    ("https://api.bitbucket.org/2.0/repositories/acme?page=2", "https://api.bitbucket.org:443/2.0"),
    ("https://api.bitbucket.org:443/2.0/x", "https://api.bitbucket.org/2.0"),
    ("http://127.0.0.1:8765/2.0/x", "http://localhost:8765/2.0"),  # two spellings of one loopback host
    ("http://localhost:8765/2.0/x", "http://127.0.0.1:8765/2.0"),
    ("http://[::1]:8765/2.0/x", "http://LOCALHOST:8765/2.0"),
])
def test_same_api_host_compares_scheme_host_and_effective_port(link, api_url):
    assert same_api_host(link, api_url)


@pytest.mark.parametrize("link, api_url", [
    ("https://evil.example.com/2.0/x", "https://api.bitbucket.org/2.0"),
    ("http://api.bitbucket.org/2.0/x", "https://api.bitbucket.org/2.0"),  # scheme
    ("https://api.bitbucket.org:8443/2.0/x", "https://api.bitbucket.org/2.0"),  # port
    ("http://127.0.0.1:8766/2.0/x", "http://localhost:8765/2.0"),  # loopback, another port
    ("https://api.bitbucket.org.evil.example.com/2.0/x", "https://api.bitbucket.org/2.0"),
    ("https://api.bitbucket.org@evil.example.com/2.0/x", "https://api.bitbucket.org/2.0"),
    ("https://api.bitbucket.org:notaport/2.0/x", "https://api.bitbucket.org/2.0"),
    ("/2.0/x", "https://api.bitbucket.org/2.0"),
])
def test_same_api_host_refuses_another_server(link, api_url):
    assert not same_api_host(link, api_url)


def test_an_api_url_port_that_is_not_a_number_is_a_config_error():
    with pytest.raises(ConfigError, match="'api_url'.*port"):
        BitbucketConfig.from_mapping({**VALID, "api_url": "https://api.bitbucket.org:x/2.0"})
@pytest.mark.parametrize("value,expected", [
    ("0001-01-01T00:00:00-01:00", datetime(1, 1, 1, 1, 0, tzinfo=timezone.utc)),
    ("0001-01-01T00:00:00.123457Z", datetime(1, 1, 1, 0, 0, 0, 123457, tzinfo=timezone.utc)),  # exact, far from 1970
])
def test_the_earliest_start_dates_that_exist_in_utc_are_accepted(value, expected):
    start_date = BitbucketConfig.from_mapping(build(start_date=value), now=NOW).start_date
    assert start_date == expected and type(start_date) is datetime
    assert start_date.replace(tzinfo=None) == expected.replace(tzinfo=None)
