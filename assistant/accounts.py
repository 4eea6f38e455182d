"""Sign-in with open or closed registration: the rules, without the web framework.

Failed sign-ins are limited per account and per client, and sign-ups per client (memory.throttle):
past a limit the answer is "too many attempts, retry after N seconds", even for the right password,
so guessing costs the attacker the window rather than a few milliseconds per try.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

from assistant.config import Registration, Settings, load_settings
from assistant.privacy import name_held_back, purge_expired_holds
from memory import store, throttle
from memory.db import write
from memory.names import normal_username
from memory.models import User

logger = logging.getLogger(__name__)


class SignInRefused(Exception):
    """Sign-in failed. `code` is a key of the login page's error texts (.chainlit/translations)."""

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


def sign_in(engine: Engine, *, registration: Registration, username: str, password: str, client: str = "",
            limits: SignInLimits | None = None) -> User:
    """The user whose password matches; with open registration a new username creates an account.

    The first account ever created becomes the operator (as in Open WebUI). A refusal is decided and
    counted in one commit, then raised.
    """
    name = normal_username(username)
    limits = limits or SignInLimits.from_settings(load_settings())

    def attempt(session: Session) -> User | SignInRefused:
        for limit, value in ((limits.per_client, client), (limits.per_account, name)):
            if (wait := throttle.retry_after(session, limit, value)) is not None:
                return SignInRefused("toomanyattempts", retry_after=wait)
        purge_expired_holds(session)
        try:  # every account's name passed this check, so a name that fails it is nobody's
            store.check_username(username)
        except store.InvalidInput:
            return SignInRefused("usernameinvalid")
        if store.get_user(session, identifier=username.strip()) is not None:
            user = store.authenticate(session, identifier=username.strip(), password=password)
            if user is None:
                return _failed(session, limits, name, client)
            throttle.clear(session, limits.per_account, name)
            return user
        if registration is Registration.CLOSED:
            store.authenticate(session, identifier=name, password=password)  # same timing as a wrong password
            return _failed(session, limits, name, client)  # and the same answer: names cannot be listed
        return _sign_up(session, limits, username, password, client)

    outcome = write(engine, attempt)
    if isinstance(outcome, SignInRefused):
        logger.info("sign-in refused: %s", outcome.code)
        raise outcome
    return outcome


def _failed(session: Session, limits: SignInLimits, name: str, client: str) -> SignInRefused:
    throttle.count(session, limits.per_account, name)
    throttle.count(session, limits.per_client, client)
    return SignInRefused("credentialssignin")


def _sign_up(session: Session, limits: SignInLimits, username: str, password: str, client: str) -> User | SignInRefused:
    name = store.check_username(username)
    try:
        store.check_password(password)
    except store.InvalidInput:
        return SignInRefused("passwordinvalid")
    if (wait := throttle.retry_after(session, limits.signups, client)) is not None:
        return SignInRefused("toomanysignups", retry_after=wait)
    if name_held_back(session, name, password):
        return SignInRefused("usernameforgotten")
    user = store.create_user(session, identifier=username, password=password)
    throttle.count(session, limits.signups, client)
    logger.info("account created id=%s role=%s", user.id, user.role)
    return user
