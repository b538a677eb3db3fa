"""A per-repository commit DAG with git-like reachability and topological listing.

``CommitGraph.listing(includes, excludes)`` reproduces what ``GET .../commits`` returns: every commit
reachable from the includes (default: all branch heads, i.e. ``git log --all``) and not reachable
from any exclude, in ``git log --topo-order`` order (newest first, no commit before all of its
children, a merged branch's commits shown right after its merge commit).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple


class Commit:
    """One commit: ``parents`` are indexes into ``CommitGraph.commits``; ``author`` may be None."""

    __slots__ = ("idx", "hash", "parents", "date_us", "raw_author", "author", "message")

    def __init__(self, idx, hash_, parents, date_us, raw_author, author, message):
        self.idx = idx
        self.hash = hash_
        self.parents: Tuple[int, ...] = tuple(parents)
        self.date_us = date_us
        self.raw_author = raw_author
        self.author = author
        self.message = message


class CommitGraph:
    """Append-only commit storage plus branch refs, with cached listings.

    Listings are cached and numbered, so an opaque page token can keep paging the snapshot it
    started on even if commits are pushed in between (like an iterator cursor would).
    """

    CACHE_SIZE = 24

    def __init__(self) -> None:
        self.commits: List[Commit] = []
        self.by_hash: Dict[str, int] = {}
        self.branches: Dict[str, int] = {}
        self.version = 0
        self._keys: "OrderedDict[tuple, int]" = OrderedDict()
        self._listings: "OrderedDict[int, List[int]]" = OrderedDict()
        self._serial = 0

    def __len__(self) -> int:
        return len(self.commits)

    def add(self, hash_: str, parents: Sequence[int], date_us: int, raw_author: str, author, message: str) -> Commit:
        """Append a commit (parents must already exist) and return it."""
        commit = Commit(len(self.commits), hash_, parents, date_us, raw_author, author, message)
        self.commits.append(commit)
        self.by_hash[hash_] = commit.idx
        self.version += 1
        return commit

    def set_branch(self, name: str, idx: int) -> None:
        """Create or move a branch ref."""
        self.branches[name] = idx
        self.version += 1

    def delete_branch(self, name: str) -> None:
        """Remove a branch ref (its commits stay, but may become unreachable)."""
        self.branches.pop(name, None)
        self.version += 1

    def resolve(self, ref: str) -> Optional[int]:
        """Branch name, full hash or unique hash prefix (>= 7 chars) -> commit index, else None."""
        if ref in self.branches:
            return self.branches[ref]
        ref = ref.lower()
        if ref in self.by_hash:
            return self.by_hash[ref]
        if 7 <= len(ref) < 40 and all(ch in "0123456789abcdef" for ch in ref):
            found = [idx for h, idx in self.by_hash.items() if h.startswith(ref)]
            if len(found) == 1:
                return found[0]
        return None

    def heads(self) -> List[int]:
        """Distinct commit indexes pointed to by branches."""
        return sorted(set(self.branches.values()))

    def cached(self, listing_id: int) -> Optional[List[int]]:
        """A previously computed listing by its id, if still cached."""
        return self._listings.get(listing_id)

    def listing(self, includes: Iterable[int], excludes: Iterable[int]) -> Tuple[int, List[int]]:
        """Return ``(listing_id, [commit index, ...])`` in topological newest-first order."""
        inc = tuple(sorted(set(includes)))
        exc = tuple(sorted(set(excludes)))
        key = (self.version, inc, exc)
        if key in self._keys:
            listing_id = self._keys[key]
            if listing_id in self._listings:
                self._keys.move_to_end(key)
                return listing_id, self._listings[listing_id]
        order = self._topo(inc, exc)
        self._serial += 1
        self._keys[key] = self._serial
        self._listings[self._serial] = order
        while len(self._listings) > self.CACHE_SIZE:
            self._listings.popitem(last=False)
        while len(self._keys) > self.CACHE_SIZE:
            self._keys.popitem(last=False)
        return self._serial, order

    def reachable(self, starts: Iterable[int], stop: Optional[set] = None) -> set:
        """Every commit reachable from ``starts`` through parents, not entering ``stop``."""
        stop = stop or set()
        seen: set = set()
        stack = [s for s in starts if s not in stop]
        commits = self.commits
        while stack:
            idx = stack.pop()
            if idx in seen:
                continue
            seen.add(idx)
            for parent in commits[idx].parents:
                if parent not in seen and parent not in stop:
                    stack.append(parent)
        return seen

    def _topo(self, inc: Sequence[int], exc: Sequence[int]) -> List[int]:
        """Kahn's algorithm with a LIFO stack, as git's ``sort_in_topological_order`` does."""
        commits = self.commits
        excluded = self.reachable(exc) if exc else set()
        included = self.reachable(inc, excluded)
        indegree = dict.fromkeys(included, 0)
        for idx in included:
            for parent in commits[idx].parents:
                if parent in indegree:
                    indegree[parent] += 1
        # oldest tip at the bottom of the stack, newest popped first
        stack = sorted((i for i, d in indegree.items() if d == 0), key=lambda i: (commits[i].date_us, i))
        out: List[int] = []
        while stack:
            idx = stack.pop()
            out.append(idx)
            for parent in commits[idx].parents:  # second parent pushed last -> walked first
                if parent in indegree:
                    indegree[parent] -= 1
                    if indegree[parent] == 0:
                        stack.append(parent)
        return out
