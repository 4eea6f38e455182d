"""`hyperalign bench voice` end to end on made-up sets in CCAT50's and CMCC's layouts (tests/voices.py
writers; the real sets never enter the tests), and the readers' handling of each set's gotchas."""

import csv
import io
import json
import random
import tarfile

import pytest

from assistant.measure.voice_data import ESSAY, load
from tests.inprocess import hyperalign as run
from tests.voices import WRITERS

EMAIL_PROMPT = "Write an email response to a someone who asked you the following: "
ESSAY_PROMPT = "Write an approximately 500 word essay to the following prompt: "
QUESTION = "Do you feel the council should fix the fence? What would you do?"


def cmcc_folder(root):
    """Four writers; 7 training items each, 2 test and 2 val; e-mails and essays alternate. The first
    writer's essays open with the study's header, which repeats the whole question."""
    rng = random.Random(7)
    splits = {"train": {}, "val": {}, "test": {}}
    for key, writer in enumerate(WRITERS):
        for split, n in (("train", 7), ("val", 2), ("test", 2)):
            items = []
            for i in range(n):
                essay = i % 2 == 1
                text = writer.text(rng)
                if essay and key == 0:
                    text = f"Subject Number 15: 2. FENCE AND COUNCIL: {QUESTION} {text}"
                if not essay and key == 1:  # signed with a participant number, and quoting the invitation
                    text = ("> Dear CMC Participant, > > Please reply to the topic below. > > Thank you! > -Dr. S > > "
                            f"{text} Thanks for your time, ID # 7")
                items.append({"prompt": (ESSAY_PROMPT if essay else EMAIL_PROMPT) + QUESTION.split("?")[0] + "?",
                              "output": text})
            splits[split][str(key)] = items
    for split, data in splits.items():
        (root / f"cmcc_{split}.json").write_text(json.dumps(data))
    return root


def ccat50_folder(root):
    """Four writers under folder names that are not in id order; 10 raw training articles each, of which
    one is a validation item and one a re-filed copy of a test item (neither may be a demonstration)."""
    rng = random.Random(8)
    names = ["Zed", "Amy", "Kit", "Bea"]  # id 0 is Zed: the csv maps ids, sorted folders would not
    test, val, archive = {}, {}, io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for key, (name, writer) in enumerate(zip(names, WRITERS, strict=True)):
            articles = [f"The {name} Report opened on Monday. " + writer.text(rng) for _ in range(10)]
            held = [f"Shares of {name} Holdings rose sharply on Tuesday. " + writer.text(rng) for _ in range(3)]
            test[str(key)] = [{"prompt": "Write an article that starts with the following: " + h.split(". ")[0] + ".",
                               "output": h} for h in held]
            val[str(key)] = [{"prompt": "Write an article that starts with the following: x", "output": articles[0]}]
            articles[1] = held[0]  # re-filed wire story
            for i, text in enumerate(articles):
                data = text.encode("latin-1")
                member = tarfile.TarInfo(f"C50train/{name}/{i:03d}newsML.txt")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    (root / "C50_raw_train_test.tar.gz").write_bytes(archive.getvalue())
    (root / "ccat50_test.json").write_text(json.dumps(test))
    (root / "ccat50_val.json").write_text(json.dumps(val))
    with (root / "ccat50_author_ids.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["author_id", "c50_author_folder", "items_matched_of_6"])
        out.writerows([[i, name, 6] for i, name in enumerate(names)])
    return root


def test_the_readers_handle_each_sets_gotchas(tmp_path):
    ccat = load("ccat50", ccat50_folder(tmp_path / "ccat" if (tmp_path / "ccat").mkdir() is None else None))
    assert [a.name for a in ccat] == ["Zed", "Amy", "Kit", "Bea"]
    for author in ccat:
        assert len(author.held_out) == 3 and len(author.demonstrations) == 8  # 10 less the val item and the copy
        assert not any(s.text.startswith("Shares of") for s in author.held_out)  # the given opening is cut
        assert all(s.opening.startswith("Shares of") for s in author.held_out)
        held = {s.text[:100] for s in author.held_out}
        assert not any(s.text[:100] in held for s in author.demonstrations)

    (tmp_path / "cmcc").mkdir()
    cmcc = load("cmcc", cmcc_folder(tmp_path / "cmcc"))
    assert [len(a.demonstrations) for a in cmcc] == [7] * 4 and [len(a.held_out) for a in cmcc] == [4] * 4
    first = [s for s in cmcc[0].demonstrations + cmcc[0].held_out if s.genre == ESSAY]
    assert first and not any("Subject" in s.text or "council should fix" in s.text for s in first)
    second = cmcc[1].demonstrations + cmcc[1].held_out
    assert not any(s.text.startswith(">") or "Participant" in s.text or "ID #" in s.text for s in second)
    assert all(s.text.endswith("Thanks for your time,") for s in second if s.genre != ESSAY)


def test_bench_voice_prints_attribution_and_auc_by_k_for_each_method_and_split(tmp_path):
    (tmp_path / "cmcc").mkdir()
    folder = cmcc_folder(tmp_path / "cmcc")
    result = run("bench", "voice", "--dataset", "cmcc", str(folder), "--ks", "1,3", "--seeds", "2", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {(r["split"], r["method"], r["k"]) for r in rows} == {
        (split, method, k) for split in ("cmcc", "cmcc email->essay")
        for method in ("verifier", "verifier-plain", "tfidf-char", "tfidf-word", "tfidf-char-log", "tfidf-word-log")
        for k in (1, 3)}
    assert all(0 <= r["attribution"] <= 1 and 0 <= r["auc"] <= 1 and r["draws"] == 2 for r in rows)
    best = {(r["split"], r["method"], r["k"]): r for r in rows}
    # The writers differ only in habits, and share every topic: the masked verifier tells them apart.
    assert best["cmcc", "verifier", 3]["attribution"] == 1.0 and best["cmcc", "verifier", 3]["auc"] > 0.95
    assert best["cmcc", "verifier", 3]["learn_ms"] > 0 and best["cmcc", "verifier", 3]["score_ms"] > 0

    table = run("bench", "voice", "--dataset", "cmcc", str(folder), "--ks", "7", "--seeds", "1",
                "--methods", "verifier")
    assert table.returncode == 0, table.stderr
    assert "| verifier, topic-masked (the app's) | 1.000 / " in table.stdout
    assert "only 6 texts to learn from" in table.stdout  # 6 e-mails each: k=7 across genres uses all 6


def test_bench_voice_on_ccat50s_layout(tmp_path):
    (tmp_path / "ccat").mkdir()
    result = run("bench", "voice", "--dataset", "ccat50", str(ccat50_folder(tmp_path / "ccat")), "--ks", "5",
                 "--seeds", "1", "--methods", "verifier,tfidf-word", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["method"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"verifier", "tfidf-word"} and rows["verifier"]["attribution"] == 1.0


@pytest.mark.parametrize("args, said", [
    (["--dataset", "cmcc", "/nonexistent"], "not a folder"),
    (["--dataset", "cmcc", "."], "cmcc_train.json is missing"),
    (["--dataset", "cmcc", ".", "--ks", "0"], "must be positive"),
    (["--dataset", "cmcc", ".", "--methods", "magic"], "--methods some of"),
])
def test_bench_voice_says_what_is_wrong(args, said):
    result = run("bench", "voice", *args)
    assert result.returncode == 2 and said in result.stderr
