"""Profile I/O for hypothesis jobs: load the profile for merging, write merge's changes with history.

(The job itself, which selects evidence, calls the model and runs merge, builds on these.)
The caller owns the commit, so a job's changes and their history rows land together or not at all.
"""

from __future__ import annotations

import json

import numpy as np
from sqlmodel import Session

from hypotheses.merge import Change, Entry, Kind, Source, Status
from memory import profile
from memory.models import ProfileEntry, aware, utcnow


def load_profile(session: Session, *, user_id: int) -> list[Entry]:
    """Every entry of the user (rejected ones too: merge must know what not to bring back)."""
    return [_entry(row) for row in profile.entries(session, user_id=user_id)]


def _entry(row: ProfileEntry) -> Entry:
    vector = tuple(np.frombuffer(row.vector, dtype="<f4").tolist()) if row.vector else None
    return Entry(
        id=row.id, facet=row.facet, text=row.text, confidence=row.confidence, support=row.support,
        evidence=tuple(json.loads(row.evidence_json)), status=Status(row.status), source=Source(row.source),
        pinned=row.pinned, last_seen=aware(row.last_seen), vector=vector,
    )


def apply_changes(
    session: Session, *, user_id: int, changes: list[Change], vector_model: str | None = None, actor: str = "inference"
) -> dict[int, int]:
    """Write the changes and one history row each; return merge's provisional ids -> database ids."""
    ids: dict[int, int] = {}
    for change in changes:
        if change.kind is Kind.SKIP or change.after is None:
            continue
        after = change.after
        if change.kind is Kind.ADD:
            row = ProfileEntry(user_id=user_id, facet=after.facet, text=after.text)
            before = None
        else:
            row = session.get(ProfileEntry, ids.get(after.id, after.id))
            if row is None or row.user_id != user_id:
                raise LookupError(f"profile entry {after.id} is not this user's")
            before = profile.snapshot(row)
            row.version += 1
        _copy(after, row, vector_model)
        if change.kind in (Kind.SUPERSEDE, Kind.EVICT):
            row.valid_to = utcnow()
        session.add(row)
        session.flush()
        if change.kind is Kind.ADD:
            ids[after.id] = row.id
            if after.replaces is not None:
                old = session.get(ProfileEntry, ids.get(after.replaces, after.replaces))
                old.superseded_by = row.id
                session.add(old)
        profile.record_change(session, entry=row, actor=actor, kind=str(change.kind), before=before, reason=change.reason)
    session.flush()
    return ids


def _copy(entry: Entry, row: ProfileEntry, vector_model: str | None) -> None:
    row.confidence, row.support, row.status, row.source = entry.confidence, entry.support, str(entry.status), str(entry.source)
    row.evidence_json = json.dumps(list(entry.evidence))
    row.pinned, row.last_seen = entry.pinned, entry.last_seen
    if entry.vector is not None:
        row.vector, row.vector_model = np.asarray(entry.vector, dtype="<f4").tobytes(), vector_model
