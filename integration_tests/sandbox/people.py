"""Who reviews and comments on the sandbox's pull requests (``participants`` and ``reviewers``).

Drawn from their own random stream (``"{seed}:people"``), so adding them left every other generated
value as it was. Shapes follow ``unit_tests/resource/bitbucket-api/pullrequest_single__*.json``: reviewers
are participants with role REVIEWER (``approved`` and ``state`` set once they acted, ``participated_on``
null until then); commenters are PARTICIPANTs; the author is never among them.
"""

from __future__ import annotations

import random
from typing import List, Sequence

from .models import Participant, PullRequest


def draw_participants(rng: random.Random, pr: PullRequest, users: Sequence) -> List[Participant]:
    """Reviewers (0-3, mostly 1-2) and commenters (0-2) for one pull request, acting before its updated_on."""
    others = [u for u in users if u is not pr.author]
    if not others:
        return []
    n_reviewers = min(len(others), rng.choices((0, 1, 2, 3), (15, 40, 35, 10))[0])
    picked = rng.sample(others, min(len(others), n_reviewers + rng.choice((0, 0, 1, 2))))
    span = max(1, pr.updated_us - pr.created_us + 1)  # participated_on lies in [created_on, updated_on]
    out = []
    for i, account in enumerate(picked):
        role = "REVIEWER" if i < n_reviewers else "PARTICIPANT"
        acted = role == "PARTICIPANT" or pr.state != "OPEN" or rng.random() < 0.5
        if not acted:
            out.append(Participant(account, role))
            continue
        approved = pr.state == "MERGED" and rng.random() < 0.8 if role == "REVIEWER" else rng.random() < 0.2
        state = "approved" if approved else ("changes_requested" if role == "REVIEWER" and rng.random() < 0.3 else None)
        out.append(Participant(account, role, approved, state, pr.created_us + rng.randrange(span)))
    return out


def add_participants(ws, seed: int) -> None:
    """Give every pull request of a freshly built workspace its participants."""
    rng = random.Random(f"{seed}:people")
    users = [m.account for m in ws.members if m.account.type == "user"]
    for repo in ws.repositories:
        for pr in repo.pull_requests:
            pr.participants = draw_participants(rng, pr, users)
