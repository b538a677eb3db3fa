"""Airbyte source for Bitbucket Cloud."""

from source_bitbucket.source import SourceBitbucket

__all__ = ["SourceBitbucket"]
