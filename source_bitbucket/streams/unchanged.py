"""The skip rule of the streams that only pushes can change (commits, branches, tags): a repository
whose ``updated_on`` has not moved since it was last read is not read again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Dict, List, Mapping, Optional, Tuple

from source_bitbucket.dates import format_datetime, parse_datetime

# A repository whose updated_on has not moved is skipped, but read anyway once this long after its last read.
FULL_CHECK_EVERY = timedelta(days=7)


class SkipsUnchangedRepositories:
    """A mixin for ``RepositoryScopedStream`` s whose data only a push can change.

    Pushes (new commits, branches or tags, deleted refs) move a repository's ``updated_on``
    (``shared/docs/bitbucket-api-more-endpoints.md`` 2.1; notes 5.7: a tag-only push is UNCONFIRMED),
    so a repository whose ``updated_on`` in this sync's listing is the one seen at its last read has
    nothing new: it is skipped without a request, unless that read (``checked_on``) is
    ``FULL_CHECK_EVERY`` old (a guard against a move Bitbucket did not make).

    The repository's state entry keeps ``repository_updated_on`` (the listing's value when read)
    and ``checked_on`` (that sync's start), written by ``checked`` once the repository is read.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._updated_on: Optional[Tuple[List[Mapping[str, Any]], Dict[str, Optional[str]]]] = None  # (listing, uuid -> updated_on)

    def listed_updated_on(self, uuid: str) -> Optional[str]:
        """The repository's ``updated_on`` in this sync's (shared) listing (indexed once per sync)."""
        listing = self.parent.listing.records()
        if self._updated_on is None or self._updated_on[0] is not listing:
            self._updated_on = (listing, {record.get("uuid"): record.get("updated_on") for record in listing})
        return self._updated_on[1].get(uuid)

    def is_unchanged(self, entry: Any, uuid: str) -> bool:
        """Whether the repository ``uuid`` can be skipped, given its state entry: the ``updated_on`` seen
        at its last read equals the listing's (compared as instants), and that read is less than
        ``FULL_CHECK_EVERY`` old."""
        if not isinstance(entry, Mapping):
            return False
        seen, listed = parse_datetime(entry.get("repository_updated_on")), parse_datetime(self.listed_updated_on(uuid))
        checked, start = parse_datetime(entry.get("checked_on")), self.sync_clock.start
        return (seen is not None and seen == listed and checked is not None
                and start - FULL_CHECK_EVERY < checked <= start)

    def checked(self, listed_updated_on: Optional[str]) -> Mapping[str, str]:
        """The state keys to write once a repository listed with ``listed_updated_on`` is read to
        its end: ``{"repository_updated_on", "checked_on"}`` ({} without a readable value)."""
        listed = parse_datetime(listed_updated_on)
        if listed is None:
            return {}
        return {"repository_updated_on": format_datetime(listed), "checked_on": format_datetime(self.sync_clock.start)}
