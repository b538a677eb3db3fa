"""Console entry point ``source-bitbucket`` (spec | check | discover | read)."""

import sys

from airbyte_cdk.entrypoint import launch

from source_bitbucket.source import SourceBitbucket


def run() -> None:
    """Run the connector with the command-line arguments (Airbyte protocol on stdout)."""
    launch(SourceBitbucket(), sys.argv[1:])
