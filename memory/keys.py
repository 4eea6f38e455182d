"""Keyed hashes with the database's own secret: stable across processes, meaningless without the key."""

from __future__ import annotations

import hashlib
import hmac

from sqlmodel import Session

from memory.models import AppKey


def keyed_hash(session: Session, value: str) -> str:
    """HMAC-SHA256 of `value` with the key generated once by the migrations (m005)."""
    key = session.get(AppKey, "audit_pseudonym")
    if key is None:
        raise LookupError("the audit key is missing: run the migrations (hyperalign serve does)")
    # surrogatepass: a value straight from a request may hold a lone surrogate; it still hashes.
    return hmac.new(key.value.encode(), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
