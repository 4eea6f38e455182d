"""Password hashes: Argon2id with OWASP's parameters (argon2-cffi), and the scrypt hashes of earlier
versions, which still verify and are replaced at the account's next sign-in (`needs_rehash`)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: Argon2id, 19 MiB, 2 iterations, 1 lane. About 35 ms per hash on
# the reference machine (2 cores), so 20 sign-ins at once need under 400 MiB.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_DUMMY_HASH: str | None = None


def hash_password(password: str) -> str:
    return _HASHER.hash(_encoded(password))


def verify_password(password: str, stored: str | None) -> bool:
    """True when the password matches. Takes as long for a missing user as for a wrong password."""
    if not stored:
        # Hash anyway so that response time does not reveal which usernames exist.
        global _DUMMY_HASH
        _DUMMY_HASH = _DUMMY_HASH or hash_password(secrets.token_hex(8))
        stored, password = _DUMMY_HASH, password + "\0never"
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    try:
        return _HASHER.verify(stored, _encoded(password))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str | None) -> bool:
    """True for a hash made with older parameters or scheme: rehash it while the password is at hand."""
    if not stored or stored.startswith("scrypt$"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _encoded(password: str) -> bytes:
    return password.encode("utf-8", "surrogatepass")


def _verify_scrypt(password: str, stored: str) -> bool:
    """The hashes of earlier versions: scrypt$N$r$p$salt$digest."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        actual = hashlib.scrypt(_encoded(password), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=2**27, dklen=len(digest) // 2)
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)
