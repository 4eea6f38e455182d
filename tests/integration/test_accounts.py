import pytest

from assistant.accounts import SignInRefused, sign_in
from assistant.config import Registration
from memory import store
from memory.db import read, write
from memory.models import Role


def attempt(engine, name, password, registration=Registration.OPEN):
    return sign_in(engine, registration=registration, username=name, password=password)


def test_open_registration_creates_then_signs_in(engine):
    created = attempt(engine, "alice", "password1")
    assert created.role is Role.OPERATOR
    assert attempt(engine, " alice ", "password1").id == created.id
    assert attempt(engine, "bob", "password2").role is Role.USER


@pytest.mark.parametrize(
    ("name", "password", "code"),
    [("x" * 500, "password1", "usernameinvalid"), (" " * 30, "password1", "usernameinvalid"),
     ("ali\x00ce", "password1", "usernameinvalid"), ("ali\ud800ce", "password1", "usernameinvalid"),
     ("carol", "short", "passwordinvalid")],
)
def test_bad_new_accounts_are_refused_with_a_reason(engine, name, password, code):
    with pytest.raises(SignInRefused) as refused:
        attempt(engine, name, password)
    assert refused.value.code == code
    assert read(engine, store.count_users) == 0


def test_wrong_password_changes_nothing(engine):
    attempt(engine, "alice", "password1")
    with pytest.raises(SignInRefused) as refused:
        attempt(engine, "alice", "password2")
    assert refused.value.code == "credentialssignin"
    assert read(engine, store.count_users) == 1


def test_closed_registration_only_signs_in_existing_accounts(engine):
    write(engine, lambda s: store.create_user(s, identifier="dave", password="password1", role=Role.USER))
    assert attempt(engine, "dave", "password1", Registration.CLOSED).identifier == "dave"


def test_closed_registration_does_not_tell_unknown_names_from_wrong_passwords(engine):
    # Before: an unknown name answered "registrationclosed", a wrong password "credentialssignin",
    # so anyone could list the accounts.
    write(engine, lambda s: store.create_user(s, identifier="dave", password="password1", role=Role.USER))
    answers = set()
    for name, password in [("mallory", "password1"), ("dave", "password2")]:
        with pytest.raises(SignInRefused) as refused:
            attempt(engine, name, password, Registration.CLOSED)
        answers.add(refused.value.code)
    # One answer for both; its own code, as open registration's text says a new name creates an account.
    assert answers == {"credentialsclosed"}
    assert read(engine, store.count_users) == 1
