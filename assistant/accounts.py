"""Sign-in with open or closed registration: the rules, without the web framework.

Failed sign-ins are limited per account and per client, and sign-ups per client (memory.throttle):
past a limit the answer is "too many attempts, retry after N seconds", even for the right password,
so guessing costs the attacker the window rather than a few milliseconds per try.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

from assistant.config import Registration, Settings, load_settings
from assistant.privacy import name_held_back, purge_expired_holds, release_hold
from memory import store, throttle
from memory.db import read, write
from memory.models import User, stored_id
from memory.passwords import hash_password, needs_rehash, verify_password

logger = logging.getLogger(__name__)


class SignInRefused(Exception):
    """Sign-in failed. `code` is a key of the login page's error texts (`auth.login.errors` in
    .chainlit/translations/en-US.json), which public/hyperalign.js makes the page show in place."""

    def __init__(self, code: str, retry_after: int | None = None) -> None:
        super().__init__(code)
        self.code, self.retry_after = code, retry_after


@dataclass(frozen=True)
class SignInLimits:
    per_account: throttle.Limit
    per_client: throttle.Limit
    signups: throttle.Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInLimits:
        window = settings.limit_window
        return cls(per_account=throttle.Limit("signin-account", settings.signin_failures_per_account, window),
                   per_client=throttle.Limit("signin-client", settings.signin_failures_per_client, window),
                   signups=throttle.Limit("signup-client", settings.signups_per_client, window))


def no_match(registration: Registration) -> SignInRefused:
    """The one answer for a wrong password (and, with closed registration, an unknown name). Open
    registration's text says a new name would have created an account, so a closed one has its own."""
    return SignInRefused("credentialssignin" if registration is Registration.OPEN else "credentialsclosed")


def signin_rules(registration: Registration) -> str:
    """What the login page says before the first try: who may sign up, and the rules a new account meets."""
    if registration is Registration.CLOSED:
        return "Accounts here are created by the operator: sign in with the username and password you were given."
    return (f"New here? Sign in with a username nobody has taken ({store.USERNAME_RULE}) and a password of "
            f"at least {store.MIN_PASSWORD} characters: that creates your account.")


def client_key(address: str) -> str:
    """Whom a per-client limit counts: an IPv4 address (IPv4-mapped IPv6 included) as it is, an IPv6
    address by its /64, which one subscriber usually holds whole (else each guess could bring a new one)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class _Verdict:
    """What the slow part of a sign-in (reading, hashing) decided, for the short write that follows."""

    refusal: SignInRefused | None = None
    failure: bool = False  # counts against the account's and the client's limits
    user_id: int | None = None
    new_hash: str | None = None  # a new account's hash, or an outdated hash's replacement
    create: bool = False


def sign_in(engine: Engine, *, registration: Registration, username: str, password: str, client: str = "",
            limits: SignInLimits | None = None) -> User:
    """The user whose password matches; with open registration a new username creates an account.

    The first account ever created becomes the operator (as in Open WebUI). The password is checked
    (and any hash made) while only reading, so no write lock waits on Argon2; then one short write
    counts a failure, or signs in, or creates the account.
    """
    limits = limits or SignInLimits.from_settings(load_settings())
    client = client_key(client)
    try:  # every account's name passed this check, so a name that fails it is nobody's
        name = store.check_username(username)
    except store.InvalidInput:
        raise SignInRefused("usernameinvalid") from None
    verdict = read(engine, lambda s: _decide(s, registration, username.strip(), name, password, client, limits))
    outcome = write(engine, lambda s: _apply(s, verdict, username, name, client, limits))
    if isinstance(outcome, SignInRefused):
        logger.info("sign-in refused: %s", outcome.code)
        raise outcome
    return outcome


def _decide(session: Session, registration: Registration, typed: str, name: str, password: str, client: str,
            limits: SignInLimits) -> _Verdict:
    for limit, value in ((limits.per_client, client), (limits.per_account, name)):
        if (wait := throttle.retry_after(session, limit, value)) is not None:
            return _Verdict(refusal=SignInRefused("toomanyattempts", retry_after=wait))
    user = store.get_user(session, identifier=typed)
    if user is not None:
        if not verify_password(password, user.password_hash):
            return _Verdict(refusal=no_match(registration), failure=True)
        return _Verdict(user_id=user.id, new_hash=hash_password(password) if needs_rehash(user.password_hash) else None)
    if registration is Registration.CLOSED:
        verify_password(password, None)  # as long as a wrong password takes, and the same answer
        return _Verdict(refusal=no_match(registration), failure=True)
    try:
        store.check_password(password)
    except store.InvalidInput:
        return _Verdict(refusal=SignInRefused("passwordinvalid"))
    if (wait := throttle.retry_after(session, limits.signups, client)) is not None:
        return _Verdict(refusal=SignInRefused("toomanysignups", retry_after=wait))
    if name_held_back(session, name, password):
        # A held name answers like a taken one: guessing its owner's password is guessing a password.
        return _Verdict(refusal=SignInRefused("credentialssignin"), failure=True)
    return _Verdict(create=True, new_hash=hash_password(password))


def _apply(session: Session, verdict: _Verdict, username: str, name: str, client: str,
           limits: SignInLimits) -> User | SignInRefused:
    if verdict.refusal is not None:
        if verdict.failure:
            throttle.count(session, limits.per_account, name)
            throttle.count(session, limits.per_client, client)
        return verdict.refusal
    if verdict.create:
        if store.get_user(session, identifier=name) is not None:  # another sign-up took it meanwhile
            return SignInRefused("credentialssignin")
        release_hold(session, name)
        purge_expired_holds(session)
        created = store.create_user(session, identifier=username, password_hash=verdict.new_hash)
        throttle.count(session, limits.signups, client)
        logger.info("account created id=%s role=%s", created.id, created.role)
        return created
    user = store.get_user_by_id(session, user_id=stored_id(verdict.user_id))  # set when the check found the account
    if user is None:  # erased between the check and now
        return SignInRefused("credentialssignin")
    throttle.clear(session, limits.per_account, name)
    if verdict.new_hash:
        user.password_hash = verdict.new_hash  # an outdated hash, replaced while the password is at hand
        session.add(user)
    return user
