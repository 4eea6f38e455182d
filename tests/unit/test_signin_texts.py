"""The login page's texts: every refusal the server gives has one sentence, and a closed app never
says that a new name creates an account."""

from __future__ import annotations

import json
import re
from pathlib import Path

from assistant.accounts import no_match, signin_rules
from assistant.config import Registration
from memory.store import MIN_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
ERRORS = json.loads((ROOT / ".chainlit" / "translations" / "en-US.json").read_text())["auth"]["login"]["errors"]


def refusal_codes() -> set[str]:
    source = (ROOT / "assistant" / "accounts.py").read_text()
    return set(re.findall(r'SignInRefused\("(\w+)"', source)) | {no_match(r).code for r in Registration}


def test_every_refusal_code_has_one_sentence_on_the_login_page():
    codes = refusal_codes()
    assert {"credentialssignin", "credentialsclosed", "usernameinvalid", "passwordinvalid",
            "toomanyattempts", "toomanysignups"} <= codes
    texts = {code: ERRORS.get(code, "") for code in codes}
    assert [code for code, text in texts.items() if not text] == []
    # One sentence: a single full stop, at the end.
    assert [code for code, text in texts.items() if text.count(". ") or not text.endswith(".")] == []


def test_open_registration_tells_newcomers_the_rules_and_closed_does_not_invite_them():
    assert no_match(Registration.OPEN).code != no_match(Registration.CLOSED).code
    assert f"at least {MIN_PASSWORD} characters" in signin_rules(Registration.OPEN)
    assert "creates your account" in signin_rules(Registration.OPEN)
    for closed in (signin_rules(Registration.CLOSED), ERRORS[no_match(Registration.CLOSED).code]):
        assert "creat" in closed and "operator" in closed  # created by the operator
        assert not re.search(r"creates? (your|an|the) account|new (name|username)", closed)
