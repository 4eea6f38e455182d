"""Salted password hashes with the standard library's scrypt (memory-hard, no extra dependency)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# N=2**14, r=8, p=1: about 50 ms and 16 MiB per hash on the reference machine (OWASP minimum).
_N, _R, _P = 2**14, 8, 1
_DUMMY_HASH: str | None = None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when the password matches. Takes as long for a missing user as for a wrong password."""
    if not stored:
        # Hash anyway so that response time does not reveal which usernames exist.
        global _DUMMY_HASH
        _DUMMY_HASH = _DUMMY_HASH or hash_password(secrets.token_hex(8))
        stored, password = _DUMMY_HASH, password + "\0never"
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)
