"""Console entry point ``source-bitbucket`` (spec | check | discover | read)."""

from __future__ import annotations

import sys
from typing import Any, Iterator, List, Mapping

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import ConnectorSpecification
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.config import BitbucketConfig, ConfigError
from source_bitbucket.inputs import InputFileError
from source_bitbucket.source import SourceBitbucket

# Errors in what the user gave (config values, --state and --catalog files), found before anything
# is read: printed as one TRACE message, without the traceback the CDK would log with it.
INPUT_ERRORS = (ConfigError, InputFileError)


class BitbucketEntrypoint(AirbyteEntrypoint):
    """The CDK's entrypoint, validating the config with ``BitbucketConfig`` first, so that a bad
    value fails ``check`` with a message naming the field (the CDK's spec validation says
    "'X' is not one of [...]" without naming it)."""

    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Mapping[str, Any]) -> None:
        BitbucketConfig.from_mapping(config)
        AirbyteEntrypoint.validate_connection(source_spec, config)


def run(args: List[str] | None = None) -> None:
    """Run the connector with the command-line arguments (Airbyte protocol on stdout), as
    ``airbyte_cdk.entrypoint.launch`` does."""
    entrypoint = BitbucketEntrypoint(SourceBitbucket())
    parsed_args = entrypoint.parse_args(sys.argv[1:] if args is None else args)
    messages = entrypoint.run(parsed_args)
    try:
        with PRINT_BUFFER:
            try:
                for message in messages:
                    print(f"{message}\n", end="")
            except INPUT_ERRORS as error:
                print(f"{_trace_without_traceback(error)}\n", end="")
                sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C: stop quietly; the last STATE printed is where the next sync resumes
        _close_quietly(messages)
        sys.stderr.write("source-bitbucket: interrupted\n")
        sys.exit(130)


def _trace_without_traceback(error: AirbyteTracedException) -> str:
    message = error.as_sanitized_airbyte_message()
    message.trace.error.stack_trace = None  # type: ignore[union-attr]  # a TRACE message has an error
    return AirbyteEntrypoint.airbyte_message_to_string(message)


def _close_quietly(messages: Iterator[str]) -> None:
    """Close the interrupted message generator now (its ``finally`` blocks log the end of the
    stream that was running), rather than at interpreter exit, where an error in them would be
    printed with a traceback."""
    try:
        messages.close()  # type: ignore[attr-defined]  # a generator
    except Exception:
        pass
