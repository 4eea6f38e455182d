import hashlib

import pytest

from memory.passwords import hash_password, needs_rehash, verify_password
from memory.store import InvalidInput, check_password, check_username
from memory.text import clean_text, is_blank


def test_control_characters_are_dropped_but_tabs_and_newlines_kept():
    assert clean_text("a\x00b\x07c\td\r\ne\x7f") == "abc\td\ne"


def test_lone_surrogates_become_replacement_characters():
    cleaned = clean_text("ok \ud800 and \udfff")
    assert cleaned == "ok \ufffd and \ufffd"
    cleaned.encode("utf-8")  # storable


def test_real_emoji_survive():
    assert clean_text("hi 👋🏽") == "hi 👋🏽"


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00\x01"])
def test_blank_messages(text):
    assert is_blank(text)


def test_password_hash_is_salted_and_verifies():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("$argon2id$")
    assert verify_password("correct horse", first)
    assert not verify_password("correct hors", first)


def test_hashes_use_owasp_argon2id_parameters_and_older_ones_ask_for_a_rehash():
    # OWASP: Argon2id with at least 19 MiB, 2 iterations, 1 lane. The scrypt hashes of earlier
    # versions (N=2**14, below OWASP's 2**17) still verify, and are flagged for a rehash.
    fresh = hash_password("correct horse")
    assert "$m=19456,t=2,p=1$" in fresh and not needs_rehash(fresh)
    salt = bytes(16)
    old = "scrypt$16384$8$1$" + salt.hex() + "$" + hashlib.scrypt(b"correct horse", salt=salt, n=2**14, r=8, p=1,
                                                                  dklen=32).hex()
    assert verify_password("correct horse", old) and not verify_password("correct hors", old)
    assert needs_rehash(old)
    weak = "$argon2id$v=19$m=1024,t=1,p=1$" + fresh.split("$")[-2] + "$" + fresh.split("$")[-1]
    assert needs_rehash(weak)


@pytest.mark.parametrize("stored", [None, "", "md5$abc", "scrypt$x$y$z$00$00", "garbage"])
def test_missing_or_damaged_hashes_never_verify(stored):
    assert not verify_password("anything", stored)


def test_passwords_with_lone_surrogates_are_hashable():
    assert verify_password("pa\ud800ssword", hash_password("pa\ud800ssword"))


@pytest.mark.parametrize("name", ["x" * 500, " " * 40, "ab", "has space", "-dash-first", "", "名前です"])
def test_bad_usernames_are_refused_with_the_rule(name):
    with pytest.raises(InvalidInput, match="3 to 32 characters"):
        check_username(name)


@pytest.mark.parametrize("name", ["alice", "bob.smith", "c_3-po", "d@example.org"])
def test_good_usernames(name):
    assert check_username(f"  {name} ") == name


def test_password_length_rules():
    with pytest.raises(InvalidInput):
        check_password("short")
    with pytest.raises(InvalidInput):
        check_password("x" * 2000)
    check_password("long enough")
