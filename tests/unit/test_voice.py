"""The authorship verifier (hypotheses.voice) on made-up writers who share every topic (tests/voices.py):
it tells them apart by how they write, not what about, and says so on a calibrated scale."""

import random
import re
import subprocess
import sys

import numpy as np
import pytest

from hypotheses import voice
from tests.voices import TOPICS, WRITERS, texts_of

ADA, BO, CY, DI = WRITERS


def test_masking_takes_the_topic_away_letter_for_letter_and_keeps_the_habits():
    text = "So I said the Tomatoes cost 12 pounds... don't you?"
    assert voice.masked(text, voice.CHAR_KEPT) == "So I said the ******** **** ## ******... ***** you?"
    assert "don't" in voice.masked(text, voice.WORD_KEPT)  # the 300 keep the commonest contractions
    assert voice.masked("  two\n\nlines ", voice.CHAR_KEPT) == "two *****"


def test_hashing_is_the_same_in_every_process():
    """Python's own hash() differs per process; a voice learned in one must score in another."""
    text = "Honestly, the garden was quite better than the compost!"
    here = voice.counts(text)[0].tolist()
    there = subprocess.run([sys.executable, "-c", "import sys; from hypotheses import voice; "
                            "print(voice.counts(sys.argv[1])[0].tolist())", text],
                           capture_output=True, text=True, check=True).stdout
    assert there.strip() == str(here)


def test_leave_one_out_predictions_equal_a_refit_without_the_text():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 5))
    kernel = x @ x.T + 1.0
    targets = np.where(rng.random((12, 2)) > 0.5, 1.0, -1.0)
    _, loo = voice.ridge_dual(kernel, targets, 0.7)
    for i in range(12):
        keep = np.arange(12) != i
        dual, _ = voice.ridge_dual(kernel[np.ix_(keep, keep)], targets[keep], 0.7)
        assert np.allclose(kernel[i, keep] @ dual, loo[i])


def test_a_voice_knows_its_writer_whatever_the_topic():
    voices = voice.learn_many([texts_of(w, 7, seed=1) for w in WRITERS])
    held = [(i, t) for i, w in enumerate(WRITERS) for t in texts_of(w, 5, seed=2)]
    matrix = voice.scores(voices, [t for _, t in held])
    truth = np.array([i for i, _ in held])
    assert (matrix.argmax(axis=1) == truth).mean() == 1.0
    own = matrix[np.arange(len(truth)), truth]
    others = matrix[np.arange(len(truth))[:, None], [[j for j in range(4) if j != i] for i in truth]]
    assert own.min() > others.max()  # every own text outscores every other writer's
    assert 0.0 < others.min() and own.max() < 1.0

    # One topic for the held-out text, another for everything Ada wrote: still hers, and Bo's on her topic is not.
    rng = random.Random(5)
    others = [t for w in (BO, CY, DI) for t in texts_of(w, 6, seed=3)]
    ada_voice = voice.learn([ADA.text(rng, TOPICS[0]) for _ in range(6)], others)
    assert ada_voice.score(ADA.text(rng, TOPICS[1])) > 0.5 > ada_voice.score(BO.text(rng, TOPICS[0]))


def test_the_range_of_ones_own_texts_is_measured_without_each_of_them():
    mine = texts_of(CY, 8, seed=4)
    others = [t for w in (ADA, BO, DI) for t in texts_of(w, 8, seed=4)]
    cy = voice.learn(mine, others)
    low, high = cy.own
    assert 0.0 < low <= high < 1.0 and cy.texts == 8
    # A text it learned from would score near 1 under a model that saw it; the range is of texts left out.
    assert high < cy.score(mine[0]) or cy.score(mine[0]) > 0.9
    assert re.fullmatch(r"sounds like you: [01]\.\d\d; your own texts score [01]\.\d\d–[01]\.\d\d",
                        voice.describe(cy.score(texts_of(CY, 1, seed=9)[0]), cy))
    assert f"{low:.2f}–{high:.2f}" in voice.describe(0.5, cy)


def test_too_little_writing_is_refused_with_how_much_is_needed():
    with pytest.raises(voice.TooLittle, match="3 are needed"):
        voice.learn(texts_of(ADA, 2, seed=1) + ["ok thanks"], texts_of(BO, 5, seed=1))
    with pytest.raises(ValueError, match="other people's texts"):
        voice.learn(texts_of(ADA, 5, seed=1), [])


def test_calibration_rises_with_the_score_and_stays_finite_on_a_perfect_split():
    calibration = voice.fit_calibration(np.array([2.0, 2.5, 3.0]), np.array([-1.0, -0.8, -1.2, -0.9]))
    assert calibration.slope > 0
    low, mid, high = calibration(np.array([-1.0, 0.9, 3.0]))
    assert low < 0.2 < mid < high and high > 0.8 and np.isfinite(calibration.slope)
    one = voice.fit_calibration(np.array([0.4]), np.array([-1.0, -0.8, -1.2, -0.9]))  # a single text: the prior
    assert one.slope > 0 and one(0.4) > one(-1.0)


def test_a_text_unlike_anyone_it_learned_from_is_nobodys():
    """A bland paragraph in no one's manner (what a model writes unprompted) lands near the ridge's bias,
    between the others' scores and the person's. However tightly the others' scores are packed, that
    must not read as the person's (the scale runs from the others' mean to the person's)."""
    bland = ("The question of the fence is one that deserves a careful answer. There are arguments on both sides, "
             "and the council has a duty to weigh them. In the end a fair compromise is usually the best outcome.")
    voices = voice.learn_many([texts_of(w, 5, seed=1) for w in WRITERS])
    assert voice.scores(voices, [bland]).max() < 0.5


def test_texts_that_say_nothing_about_anyone_are_nobodys():
    """Blank, punctuation, emoji, a few words, another script: none is the person's (the review's finding:
    they scored 0.61-1.00 under every voice)."""
    voices = voice.learn_many([texts_of(w, 6, seed=2) for w in WRITERS])
    assert voice.scores(voices, ["", "!!!", "🙂🙂🙂", "ok thanks"]).max() == 0.0  # under 30 words: nothing
    assert voice.scores(voices, ["привет как дела, как твои дела сегодня"]).max() < 0.5  # only word shapes
    with pytest.raises(voice.TooLittle, match="too short to tell"):
        voices[0].score("ok thanks")  # a few words weigh as much as a page: not scored at all


def test_a_text_kept_twice_counts_once_and_short_texts_not_at_all():
    text = texts_of(ADA, 1, seed=3)[0]
    assert voice.usable([text, text.upper().lower(), "  " + text + " ", "too short to count"]) == [text]


def test_the_word_view_keeps_contractions_and_one_letter_words():
    whole = voice.word_grams("i don't")
    assert len(whole) == 3  # "i", "don't", and the pair: not "don" alone
    assert not set(voice.word_grams("don")) & set(whole)


def test_words_are_counted_in_scripts_without_spaces():
    assert voice.words_in("这是一个很长的句子，我们用它来测试。") >= 15
    assert voice.words_in("two words") == 2


def test_learning_without_others_or_with_an_empty_person_is_refused_and_odd_text_is_read():
    with pytest.raises(ValueError, match="other people's texts"):
        voice.learn_many([texts_of(ADA, 4, seed=1)])
    with pytest.raises(ValueError, match="at least one text"):
        voice.learn_many([texts_of(ADA, 4, seed=1), []])
    voices = voice.learn_many([texts_of(ADA, 4, seed=1), texts_of(BO, 4, seed=1)])
    assert np.isfinite(voice.scores(voices, ["a lone surrogate \ud800 in a text"])).all()
