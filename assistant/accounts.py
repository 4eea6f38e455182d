"""Sign-in with open or closed registration: the rules, without the web framework."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlmodel import Session

from assistant.config import Registration
from assistant.privacy import name_held_back
from memory import store
from memory.db import write
from memory.models import User

logger = logging.getLogger(__name__)


class SignInRefused(Exception):
    """Sign-in failed. `code` is a key of the login page's error texts (.chainlit/translations)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def sign_in(engine: Engine, *, registration: Registration, username: str, password: str) -> User:
    """The user whose password matches; with open registration a new username creates an account.

    The first account ever created becomes the operator (as in Open WebUI).
    """

    def attempt(session: Session) -> User:
        name = username.strip()
        if store.get_user(session, identifier=name) is not None:
            user = store.authenticate(session, identifier=name, password=password)
            if user is None:
                raise SignInRefused("credentialssignin")
            return user
        if registration is Registration.CLOSED:
            store.authenticate(session, identifier=name, password=password)  # same timing as a wrong password
            raise SignInRefused("registrationclosed")
        try:
            name = store.check_username(name)
        except store.InvalidInput:
            raise SignInRefused("usernameinvalid") from None
        try:
            store.check_password(password)
        except store.InvalidInput:
            raise SignInRefused("passwordinvalid") from None
        if name_held_back(session, name, password):
            raise SignInRefused("usernameforgotten")
        user = store.create_user(session, identifier=name, password=password)
        logger.info("account created id=%s role=%s", user.id, user.role)
        return user

    return write(engine, attempt)
