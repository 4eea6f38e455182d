"""`hyperalign eval style` end to end against the fake model, on a made-up set in CMCC's layout
(tests/voices.py writers): four conditions written with the app's reply prompt, scored by the
verifier, judged in both orders, resumable, with a report and a chart."""

import json
import re

from assistant.measure.style_eval import JUDGE_SYSTEM
from assistant.prompt import EXEMPLAR_HEADER
from tests.inprocess import hyperalign
from tests.integration.test_voice_bench import cmcc_folder

GENERIC = ("The question of the fence is one that deserves a careful answer. There are arguments on both sides, "
           "and the council has a duty to weigh them. In the end a fair compromise is usually the best outcome, "
           "and residents should be consulted before any decision is taken about the matter at hand.")


def model(body):
    """A model that writes like the person only when it is shown how they write: it echoes the first
    example of their writing it was given, and otherwise writes the same bland paragraph for everyone."""
    system = body["messages"][0]["content"]
    if EXEMPLAR_HEADER in system:
        return re.findall(r"«(.+?)»", system.split(EXEMPLAR_HEADER, 1)[1])[0]
    return GENERIC


def analyst(body):
    """Hypotheses from the texts shown; as a judge, it picks whichever candidate is not the bland one."""
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    if system == JUDGE_SYSTEM:
        a = user.split("Candidate A:")[1].split("Candidate B:")[0]
        return json.dumps({"choice": "B" if GENERIC[:40] in a else "A"})
    return json.dumps({"hypotheses": [{"action": "add", "facet": "style", "text": "Writes in short bursts.",
                                       "evidence": [1], "confidence": 0.6, "entry": None, "stated": False}]})


def evaluation(fake_llm, tmp_path, *options):
    """The fake model answering as a model and as an analyst; a made-up CMCC set; the command's arguments."""
    fake_llm.respond("chat", model)
    fake_llm.respond("hypotheses", analyst)
    (tmp_path / "cmcc").mkdir()
    folder, out = cmcc_folder(tmp_path / "cmcc"), tmp_path / "style"
    env = {"OPENAI_BASE_URL": fake_llm.base_url}
    return folder, out, env, ("eval", "style", "--dataset", "cmcc", str(folder), "--k", "5", *options, "--out", str(out))


def test_the_style_evaluation_scores_each_condition_judges_both_orders_and_resumes(fake_llm, tmp_path):
    folder, out, env, args = evaluation(fake_llm, tmp_path, "--per-author", "2", "--judge", "--concurrency", "3")
    first = hyperalign(*args, env=env)
    assert first.returncode == 0, first.stderr
    # 4 writers' hypotheses, 8 items x 4 conditions, 8 items x 3 personalised conditions x 2 orders
    assert "84/84" in first.stderr
    report = json.loads((out / "report.json").read_text())
    conditions = report["conditions"]
    assert set(conditions) == {"none", "few_shot", "hypotheses", "app"}
    assert all(row["n"] == 8 and row["failed"] == 0 for row in conditions.values())
    # Shown their writing, the model sounds like them; told only about them, or nothing, it does not.
    assert conditions["app"]["verifier_mean"] > 0.5 > conditions["none"]["verifier_mean"]
    assert conditions["few_shot"]["attributed"] == conditions["app"]["attributed"] == 1.0
    assert conditions["hypotheses"]["verifier_mean"] == conditions["none"]["verifier_mean"]  # the same bland text
    assert conditions["app"]["judge_win_rate_over_none"] == 1.0
    assert conditions["hypotheses"]["judge_win_rate_over_none"] == 0.5  # identical texts: each order picks A
    real, floor = report["reference"]["real_texts"], report["reference"]["other_authors_texts"]
    assert real["verifier_mean"] > floor["verifier_mean"] and real["n"] == 8
    assert report["hypotheses"] == {"authors": 4, "mean_per_author": 1.0, "failed": 0}
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"app \(n=8\): 0\.\d{3} · 100% · 100% · 100%", first.stdout)
    # The app's condition was conditioned on the hypotheses and the style card, as the app's replies are.
    app_prompts = [r.body["messages"][0]["content"] for r in fake_llm.requests_for("chat")
                   if "Writes in short bursts." in r.body["messages"][0]["content"]]
    assert app_prompts and any(EXEMPLAR_HEADER in p for p in app_prompts)

    calls = len(fake_llm.requests)
    again = hyperalign(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert len(fake_llm.requests) == calls  # resumed: nothing asked twice
    other = hyperalign("eval", "style", "--dataset", "cmcc", str(folder), "--k", "3", "--out", str(out), env=env)
    assert other.returncode == 2 and "holds results of another run" in other.stderr


def test_the_style_evaluation_needs_a_model_and_a_set(tmp_path, fake_llm):
    offline = hyperalign("eval", "style", "--dataset", "cmcc", str(tmp_path), env={"OPENAI_API_KEY": "",
                                                                                      "OPENAI_BASE_URL": ""})
    assert offline.returncode == 2 and "needs a model" in offline.stderr
    missing = hyperalign("eval", "style", "--dataset", "cmcc", str(tmp_path), "--out", str(tmp_path / "o"),
                         env={"OPENAI_BASE_URL": fake_llm.base_url})
    assert missing.returncode == 2 and "cmcc_train.json is missing" in missing.stderr


def test_a_resumed_run_asks_again_what_failed_and_survives_a_half_written_line(fake_llm, tmp_path):
    _, out, env, args = evaluation(fake_llm, tmp_path, "--per-author", "1")
    assert hyperalign(*args, env=env).returncode == 0
    journal = out / "texts.jsonl"
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    failed = rows[0] | {"text": "", "failure": "ModelTimeout"}  # as a run that timed out on it wrote
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows[1:]) + json.dumps(failed) + "\n" + '{"key": "3:0:no')
    calls = len(fake_llm.requests_for("chat"))

    again = hyperalign(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert len(fake_llm.requests_for("chat")) == calls + 1  # the failed text, asked again; nothing else
    kept = [json.loads(line) for line in journal.read_text().splitlines()]  # every line whole again
    assert [r for r in kept if r["key"] == failed["key"] and not r["failure"]]
    report = json.loads((out / "report.json").read_text())
    assert all(row["n"] == 4 and row["failed"] == 0 for row in report["conditions"].values())
