"""The generated development set of preferences stated once (assistant.measure.prefset)."""

from assistant.measure.prefset import FACTS, make_recall_set
from assistant.measure.recall import parse_locomo
from memory.retrieve import query_terms


def test_the_same_seed_writes_the_same_set_and_another_seed_another():
    assert make_recall_set(people=3, seed=5) == make_recall_set(people=3, seed=5)
    assert make_recall_set(people=3, seed=5) != make_recall_set(people=3, seed=6)


def test_every_question_is_scored_against_the_persons_own_statement():
    data = make_recall_set(people=6, seed=2)
    for conversation in parse_locomo(data):
        assert conversation.unscored == 0 and len(conversation.questions) >= 10
        said = {turn.dia_id: turn for turn in conversation.turns}
        person = conversation.speakers[0]
        for question in conversation.questions:
            (turn_id,) = question.evidence
            assert said[turn_id].speaker == person  # never the assistant's restatement
            assert any(fact.answer for fact in FACTS if any(s in said[turn_id].text for s in fact.said))


def test_questions_ask_in_other_words_and_statements_sit_among_unrelated_talk():
    data = make_recall_set(people=20, seed=1)
    shared, questions = 0, 0
    for conversation in parse_locomo(data):
        said = {turn.dia_id: turn.text for turn in conversation.turns}
        assert len(said) > 100  # many turns around a handful of statements
        for question in conversation.questions:
            (turn_id,) = question.evidence
            words = set(query_terms(question.text))
            shared += bool(words & set(query_terms(said[turn_id])))
            questions += 1
    assert shared / questions < 0.1, f"{shared} of {questions} questions share a content word with their statement"
