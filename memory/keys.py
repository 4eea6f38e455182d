"""Keyed hashes with the database's own secret: stable across processes, meaningless without the key."""

from __future__ import annotations

import hashlib
import hmac

from sqlmodel import Session

from memory.models import AppKey


def keyed_hash(session: Session, value: str) -> str:
    """HMAC-SHA256 of `value` with the key generated once by the migrations (m005)."""
    # surrogatepass: a value straight from a request may hold a lone surrogate; it still hashes.
    return hmac.new(_key(session), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _key(session: Session) -> bytes:
    """The key, read once per session: an import hashes thousands of ids in one transaction, and the row,
    expired by every flush, would be read again for each."""
    cached = session.info.get(KEY_INFO)
    if cached is None:
        row = session.get(AppKey, "audit_pseudonym")
        if row is None:
            raise LookupError("the audit key is missing: run the migrations (hyperalign serve does)")
        cached = session.info[KEY_INFO] = row.value.encode()
    return cached


KEY_INFO = "hyperalign.app_key"
