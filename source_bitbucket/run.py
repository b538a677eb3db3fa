"""Console entry point ``source-bitbucket`` (spec | check | discover | read, and --version)."""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, List, Mapping

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import ConnectorSpecification
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.config import BitbucketConfig, ConfigError
from source_bitbucket.inputs import InputFileError
from source_bitbucket.source import SourceBitbucket

PACKAGE = "source-bitbucket"
COMMANDS = ("spec", "check", "discover", "read")
# Errors in what the user gave (config values, --state and --catalog files), found before anything
# is read: printed as one TRACE message, without the traceback the CDK would log with it.
INPUT_ERRORS = (ConfigError, InputFileError)


class BitbucketEntrypoint(AirbyteEntrypoint):
    """The CDK's entrypoint, validating the config with ``BitbucketConfig`` first, so that a bad
    value fails ``check`` with a message naming the field (the CDK's spec validation says
    "'X' is not one of [...]" without naming it). Adds ``--version``; no command is a usage error."""

    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Mapping[str, Any]) -> None:
        BitbucketConfig.from_mapping(config)
        AirbyteEntrypoint.validate_connection(source_spec, config)

    @staticmethod
    def parse_args(args: List[str]):
        """The CDK's arguments, plus ``--version`` (before the command: prints ``source-bitbucket
        <version>``, exit 0). Without a command: the usage and a one-line error, exit 2 (the CDK
        would raise "No command passed" with a traceback)."""
        args = list(args)
        before_command = args[: next((i for i, arg in enumerate(args) if arg in COMMANDS), len(args))]
        if "--version" in before_command:
            print(f"{PACKAGE} {version()}")
            sys.exit(0)
        parsed = AirbyteEntrypoint.parse_args(args)
        if not parsed.command:
            prog = os.path.basename(sys.argv[0]) or PACKAGE
            sys.stderr.write(
                f"usage: {prog} [-h] [--version] {{{','.join(COMMANDS)}}} ...\n"
                f"{prog}: error: no command given: use one of {', '.join(COMMANDS)} (see {prog} --help)\n"
            )
            sys.exit(2)
        return parsed


def version() -> str:
    """The installed package's version (setup.py's, read from the source checkout if not installed)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        setup = Path(__file__).resolve().parent.parent / "setup.py"
        found = re.search(r'\bversion="([^"]+)"', setup.read_text()) if setup.is_file() else None
        return found.group(1) if found else "unknown"


def run(args: List[str] | None = None) -> None:
    """Run the connector with the command-line arguments (Airbyte protocol on stdout), as
    ``airbyte_cdk.entrypoint.launch`` does."""
    # before the entrypoint exists (it logs at creation): --version and usage errors print nothing else
    parsed_args = BitbucketEntrypoint.parse_args(sys.argv[1:] if args is None else args)
    entrypoint = BitbucketEntrypoint(SourceBitbucket())
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
