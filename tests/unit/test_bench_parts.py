"""The LoCoMo reader and the scoring, on a tiny conversation set of our own in LoCoMo's format."""

from assistant.measure.recall import Scores, evidence_ids, parse_locomo, recall_at

KNOWN = {"D1:1", "D1:2", "D2:1", "D11:26", "D30:5"}


def test_evidence_ids_are_normalised_as_locomo_needs():
    assert evidence_ids(["D1:1; D2:1"], KNOWN) == {"D1:1", "D2:1"}
    assert evidence_ids(["D1:1 D1:2"], KNOWN) == {"D1:1", "D1:2"}
    assert evidence_ids(["D:11:26", "D30:05"], KNOWN) == {"D11:26", "D30:5"}
    assert evidence_ids(["D", "D9:9", ""], KNOWN) == frozenset()


def sample():
    return [{
        "sample_id": "conv-x",
        "conversation": {
            "speaker_a": "Rosa", "speaker_b": "Tom",
            "session_1_date_time": "1:00 pm on 1 May, 2023",
            "session_1": [
                {"speaker": "Rosa", "dia_id": "D1:1", "text": "I started learning the cello."},
                {"speaker": "Tom", "dia_id": "D1:2", "text": "Nice!", "blip_caption": "a photo of a cello"},
            ],
            "session_2_date_time": "2:00 pm on 9 May, 2023",
            "session_2": [{"speaker": "Rosa", "dia_id": "D2:1", "text": "My cello teacher is from Oslo."}],
            "session_3_date_time": "orphan timestamp without turns",
        },
        "qa": [
            {"question": "What instrument?", "answer": "cello", "evidence": ["D1:1"], "category": 4},
            {"question": "Where is the teacher from?", "answer": 2023, "evidence": ["D1:1; D2:1"], "category": 1},
            {"question": "Unknowable?", "adversarial_answer": "x", "evidence": ["D2:1"], "category": 5},
            {"question": "Broken evidence", "answer": "y", "evidence": ["D"], "category": 2},
        ],
    }]


def test_parse_locomo_reads_sittings_captions_and_drops_unscorable_questions():
    (conv,) = parse_locomo(sample())
    assert [t.dia_id for t in conv.turns] == ["D1:1", "D1:2", "D2:1"]
    assert conv.turns[1].text == "Tom: Nice! (shares a photo: a photo of a cello)"
    assert [q.category for q in conv.questions] == [4, 1, 5] and conv.unscored == 1


def test_recall_at_k_and_adversarial_kept_apart():
    assert recall_at(["D1:1", "D9:9"], frozenset({"D1:1", "D2:1"}), 1) == 0.5
    scores = Scores()
    scores.add("hybrid", 4, ["D1:1"], frozenset({"D1:1"}))
    scores.add("hybrid", 5, [], frozenset({"D2:1"}))
    table = scores.table()["hybrid"]
    assert table["overall"]["n"] == 1 and table["overall"]["R@1"] == 1.0
    assert table["adversarial"]["R@1"] == 0.0


def test_the_share_of_replies_among_the_top_k_is_reported_per_mode():
    scores = Scores()
    ranked = ["D1:2", "D1:1", "D2:1", "D1:2", "D9:9"]
    scores.add("hybrid", 4, ranked, frozenset({"D1:1"}), replies=frozenset({"D1:2"}))
    scores.add("hybrid", 4, ["D1:1"], frozenset({"D1:1"}), replies=frozenset({"D1:2"}))
    assert scores.table()["reply_share"]["hybrid"] == {"@5": 0.2, "@10": 0.2}  # (2/5 + 0/1) / 2


def test_what_questions_about_somebody_else_recall_is_reported_as_noise():
    from assistant.measure.recall import RECALL_K, render_recall_table

    scores = Scores()
    scores.add("hybrid", 4, ["D1:1"], frozenset({"D1:1"}))
    assert "foreign" not in scores.table()  # one person alone: nobody else to ask about
    scores.foreign += [RECALL_K, 0, 3, 0]
    table = scores.table()
    assert table["foreign"] == {"questions": 4, "k": RECALL_K, "mean_recalled": 2.25, "share_recalling_nothing": 0.5}
    scores.small_talk += [0, 0, 0, 1]
    table = scores.table()
    assert table["small_talk"] == {"messages": 4, "k": RECALL_K, "mean_recalled": 0.25, "share_recalling_nothing": 0.75}
    shown = render_recall_table({**table, "lexical": table["hybrid"], "dense": table["hybrid"]})
    assert "questions about somebody else (4): 2.25 of 6 recalled on average, none for 50%" in shown
    assert "small talk (4): 0.25 of 6 recalled on average, none for 75%" in shown
