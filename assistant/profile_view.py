"""What the memory panel shows: the profile by facet (strongest first), rejected entries, the history
of changes (repeats grouped) and the style card (in plain words, each with its measure). Pure
functions over rows, plus one loader; the HTTP API and the panel share this shape."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlmodel import Session

from hypotheses.parse import Facet
from hypotheses.style import StyleStats, statements
from memory import profile
from memory.models import Actor, EntryStatus, ProfileEntry, ProfileHistory, aware

HISTORY_SHOWN = 50
KIND_WORDS = {"add": "added", "support": "confirmed", "supersede": "replaced", "evict": "dropped",
              "edit": "edited", "pin": "pinned", "unpin": "unpinned", "reject": "rejected", "restore": "restored",
              "undo": "undid"}  # read as "<who> <what> <text>": "you undid 'Is learning Welsh.'"


def entry_view(row: ProfileEntry) -> dict:
    return {"id": row.id, "facet": row.facet, "text": row.text, "confidence": round(row.confidence, 2),
            "support": row.support, "source": row.source, "pinned": row.pinned, "sensitive": row.sensitive,
            "status": row.status, "version": row.version, "evidence": len(json.loads(row.evidence_json or "[]"))}


def history_view(row: ProfileHistory) -> dict:
    before = json.loads(row.before_json) if row.before_json else None
    after = json.loads(row.after_json) if row.after_json else None
    return {"id": row.id, "entry_id": row.entry_id, "by": "you" if row.actor == Actor.USER else "the assistant",
            "what": KIND_WORDS.get(row.kind, row.kind), "at": aware(row.at).isoformat(),
            "before": before["text"] if before else None, "after": after["text"] if after else None,
            "reason": row.reason}


def grouped_history(events: Sequence[dict]) -> list[dict]:
    """Consecutive events by the same actor of the same kind as one line ("the assistant confirmed 4
    entries"), newest first like `events`; each group keeps its events for those who open it."""
    groups: list[dict] = []
    for event in events:
        last = groups[-1] if groups else None
        if last is not None and (last["by"], last["what"]) == (event["by"], event["what"]):
            last["events"].append(event)
            last["count"] += 1
        else:
            groups.append({"id": event["id"], "by": event["by"], "what": event["what"], "at": event["at"],
                           "count": 1, "events": [event]})
    return groups


def panel_view(entries: Sequence[ProfileEntry], history: Sequence[ProfileHistory], style: dict) -> dict:
    active = sorted((e for e in entries if e.status == EntryStatus.ACTIVE),
                    key=lambda e: (-e.pinned, -e.confidence, -e.support, e.id))
    facets = {facet.value: [entry_view(e) for e in active if e.facet == facet.value] for facet in Facet}
    undone = {h.undoes for h in history if h.undoes is not None}
    can_undo = any(h.actor == Actor.USER and h.kind != "undo" and h.id not in undone for h in history)
    return {
        "facets": facets,
        "rejected": [entry_view(e) for e in entries if e.status == EntryStatus.REJECTED],
        "superseded": sum(1 for e in entries if e.status == EntryStatus.SUPERSEDED),
        "history": grouped_history([history_view(h) for h in reversed(history[-HISTORY_SHOWN:])]),
        "style": [{"text": plain, "numbers": measured} for plain, measured in statements(StyleStats.from_json(style))],
        "can_undo": can_undo,
    }


def load_panel(session: Session, *, user_id: int) -> dict:
    return panel_view(profile.entries(session, user_id=user_id), profile.history(session, user_id=user_id),
                      profile.load_style(session, user_id=user_id))
