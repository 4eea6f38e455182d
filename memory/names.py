"""Usernames have one normal form, so `Alice`, `alice` and a full-width `Ａｌｉｃｅ` are one account."""

from __future__ import annotations

import unicodedata


def normal_username(name: str) -> str:
    """NFKC (full-width and other compatibility forms become plain letters), then case-folded."""
    return unicodedata.normalize("NFKC", name).strip().casefold()
