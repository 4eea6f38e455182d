"""`hyperalign eval style`: the paper's authorship experiment against the configured model. For each author
of CCAT50 or CMCC, k of their texts are all it knows of them; for each of their held-out prompts the
model writes a text under four conditions:
- `none`: the prompt alone;
- `few_shot`: the first three of the k texts as examples of the person's writing (the app's prompt holds
  three, each cut to 800 characters);
- `hypotheses`: the hypotheses the app infers from those texts (hypotheses.infer, as a job would);
- `app`: what the app does: those hypotheses, the measured style card, and the three texts that sound
  most like the person (hypotheses.voice.Voice.representative: chosen for style, not topic).

Each text is built with the app's own reply prompt (assistant.prompt) and scored by the verifier
(hypotheses.voice) under its author's voice. That voice never learned the texts the model was shown
(copying them must not pass for writing like the person): it learns the author's held-out texts and
up to k of their other texts, against the other authors'. Beside the conditions the report puts the
authors' real held-out texts (what a person scores) and other authors' (the cross-author floor), each
scored by voices that learned without it (leave-one-out). With `--judge`, a model judge sees one
text of the author's that the model was not shown and two candidates, a personalised one and
`none`'s, and says which the author wrote; each pair is asked in both orders, as in DITTO: a verdict
that flips with the order counts half, and a pair counts only when both orders were answered.

Every answer is appended to a JSONL file in `--out` as it arrives, so a run that stops resumes where
it stopped, and asks again what failed; `run.json` keeps what makes two runs comparable. Only the
model is used: no database.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.context import Budget
from assistant.llm import Gateway, LLMError, Purpose
from assistant.measure.safety_eval import require_chart_library
from assistant.measure.voice import draw
from assistant.measure.voice_data import Author, Sample, load
from assistant.prompt import MAX_EXEMPLARS, ReplyParts, fit_reply
from hypotheses import voice
from hypotheses.infer import InferenceFailed, Text, infer
from hypotheses.style import StyleStats, describe, observe

CONDITIONS = ("none", "few_shot", "hypotheses", "app")
PERSONALISED = CONDITIONS[1:]
MAX_CHARS = 20_000
JUDGE_SYSTEM = ("You compare writing styles. You are shown one text written by a person, then two candidate "
                "texts, A and B. Exactly one of them was written by the same person. Judge by how it is written "
                "(wording, rhythm, punctuation, habits), not by its topic or quality. Answer in JSON: "
                '{"choice": "A"} or {"choice": "B"}.')
JUDGE_SCHEMA = {"type": "object", "properties": {"choice": {"type": "string", "enum": ["A", "B"]}},
                "required": ["choice"], "additionalProperties": False}


@dataclass(frozen=True)
class Item:
    author: int
    key: str  # "<author>:<n>", stable for a dataset
    task: str  # what the model is asked to write
    opening: str  # CCAT50: the first sentence the article starts with (cut before scoring)
    real: str  # what the author wrote


def items_of(authors: Sequence[Author], per_author: int | None) -> list[Item]:
    return [Item(a, f"{a}:{n}", _task(sample), sample.opening, sample.text)
            for a, author in enumerate(authors) for n, sample in enumerate(author.held_out[:per_author])]


def _task(sample: Sample) -> str:
    if sample.opening:
        return f"Write a news article that starts with the following sentence: {sample.opening}"
    if sample.genre == "email":
        return f"Write an email response to someone who asked you the following: {sample.prompt}"
    return f"Write an approximately 500 word essay to the following prompt: {sample.prompt}"


def prompt_for(condition: str, item: Item, *, demonstrations: Sequence[str], hypotheses: Sequence[str],
               voice_of: voice.Voice) -> ReplyParts:
    """The app's reply prompt, holding what the condition allows of the person."""
    if condition == "none":
        return ReplyParts((), item.task, max_chars=MAX_CHARS)
    if condition == "few_shot":
        return ReplyParts((), item.task, max_chars=MAX_CHARS, exemplars=list(demonstrations))
    if condition == "hypotheses":
        return ReplyParts((), item.task, max_chars=MAX_CHARS, profile=list(hypotheses))
    stats = StyleStats()
    for text in demonstrations:
        stats = observe(stats, text)
    usable = voice.usable(demonstrations)
    chosen = [usable[i] for i in voice_of.representative(MAX_EXEMPLARS)]
    return ReplyParts((), item.task, max_chars=MAX_CHARS, profile=list(hypotheses), style=describe(stats),
                      exemplars=chosen)


def written(text: str, item: Item) -> str:
    """A generated article repeats the opening it was given: cut, as it is from the real one."""
    body = voice.normal_spacing(text)
    return body[len(item.opening):].lstrip() if item.opening and body.startswith(item.opening) else body


class Journal:
    """One JSONL file of finished work, read back on resume. A half-written last line (a run stopped in
    the middle of it) is cut off, so the next row starts a line of its own; a row that failed is not
    done, and is asked again."""

    def __init__(self, path: Path) -> None:
        self.path, self.done = path, {}
        if not path.exists():
            return
        raw = path.read_text(encoding="utf-8")
        if raw and not raw.endswith("\n"):
            raw = raw[:raw.rfind("\n") + 1]
            path.write_text(raw, encoding="utf-8")
        for line in raw.splitlines():
            try:
                row = json.loads(line)
                if not row.get("failure"):
                    self.done[row["key"]] = row
            except (ValueError, KeyError, TypeError, AttributeError):
                continue

    def add(self, row: dict) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if not row.get("failure"):
            self.done[row["key"]] = row


async def _hypotheses(gateway: Gateway, demonstrations: Sequence[str]) -> list[str]:
    async def complete(prompt, schema):
        return await gateway.complete(prompt, purpose=Purpose.HYPOTHESES, json_schema=schema)

    inference = await infer(complete, [Text(i, t) for i, t in enumerate(demonstrations, start=1)], [])
    return [c.text for c in inference.candidates if c.action == "add"]


async def _generate(gateway: Gateway, parts: ReplyParts) -> str:
    def fitted(budget: Budget) -> list[dict[str, str]]:
        return fit_reply(parts, budget)

    return "".join([token async for token in gateway.stream(fitted, purpose=Purpose.CHAT)])


async def _judge(gateway: Gateway, reference: str, first: str, second: str) -> str | None:
    user = f"Text by the person:\n<<<{reference}>>>\n\nCandidate A:\n<<<{first}>>>\n\nCandidate B:\n<<<{second}>>>"
    answer = await gateway.complete(lambda _budget: [{"role": "system", "content": JUDGE_SYSTEM},
                                                     {"role": "user", "content": user}],
                                    purpose=Purpose.HYPOTHESES, json_schema=JUDGE_SCHEMA)
    try:
        choice = json.loads(answer.text).get("choice")
    except (ValueError, AttributeError):
        return None
    return choice if choice in ("A", "B") else None


Progress = Callable[[int, int], None]


async def run(gateway: Gateway, authors: Sequence[Author], items: Sequence[Item], *, k: int, out: Path, judge: bool,
              concurrency: int, progress: Progress) -> dict:
    pools = [[s.text for s in a.demonstrations] for a in authors]
    demonstrations = draw(pools, k, seed=0)
    unseen = [[t for t in pool if t not in shown][:k] for pool, shown in zip(pools, demonstrations, strict=True)]
    reals = [[s.text for s in a.held_out] for a in authors]
    voices, held_scores = scoring_voices(unseen, reals)
    references = [(u or r or d)[0] for u, r, d in zip(unseen, reals, demonstrations, strict=True)]
    profiles, texts, verdicts = (Journal(out / name) for name in ("hypotheses.jsonl", "texts.jsonl", "judge.jsonl"))
    wanted = sorted({i.author for i in items})
    work = len(wanted) + len(items) * len(CONDITIONS) + (len(items) * len(PERSONALISED) * 2 if judge else 0)
    finished = 0
    gate = asyncio.Semaphore(concurrency)

    def tick() -> None:
        nonlocal finished
        finished += 1
        progress(finished, work)

    progress(0, work)

    async def profile(author: int) -> None:
        key = str(author)
        if key not in profiles.done:
            async with gate:
                try:
                    lines, failure = await _hypotheses(gateway, demonstrations[author]), None
                except (InferenceFailed, LLMError) as exc:
                    lines, failure = [], type(exc).__name__
            profiles.add({"key": key, "hypotheses": lines, "failure": failure})  # a failure is asked again on resume
        tick()

    await asyncio.gather(*(profile(a) for a in wanted))

    shown_voices = voice.learn_many([voice.usable(d) or d for d in demonstrations])  # the app's exemplar choice

    async def generate(item: Item, condition: str) -> None:
        key = f"{item.key}:{condition}"
        profile_row = profiles.done.get(str(item.author))
        if key not in texts.done:
            if condition in ("hypotheses", "app") and profile_row is None:
                text, failure = "", "no hypotheses"  # never the `none` prompt under another name
            else:
                parts = prompt_for(condition, item, demonstrations=demonstrations[item.author],
                                   hypotheses=profile_row["hypotheses"] if profile_row else [],
                                   voice_of=shown_voices[item.author])
                async with gate:
                    try:
                        text, failure = written(await _generate(gateway, parts), item), None
                    except LLMError as exc:
                        text, failure = "", type(exc).__name__
            texts.add({"key": key, "item": item.key, "author": item.author, "condition": condition, "text": text,
                       "failure": failure})
        tick()

    await asyncio.gather(*(generate(item, c) for item in items for c in CONDITIONS))

    if judge:
        async def ask(item: Item, condition: str, order: str) -> None:
            key = f"{item.key}:{condition}:{order}"
            mine, plain = texts.done.get(f"{item.key}:{condition}"), texts.done.get(f"{item.key}:none")
            if key not in verdicts.done and mine and plain:  # a text that failed is not judged
                first, second = (mine["text"], plain["text"]) if order == "mine-first" else (plain["text"], mine["text"])
                async with gate:
                    try:
                        choice, failure = await _judge(gateway, references[item.author], first, second), None
                    except LLMError as exc:
                        choice, failure = None, type(exc).__name__
                picked = None if choice is None else (choice == "A") == (order == "mine-first")
                verdicts.add({"key": key, "item": item.key, "condition": condition, "order": order,
                              "personalised": picked, "failure": failure or (None if choice else "unusable answer")})
            tick()

        await asyncio.gather(*(ask(item, c, order) for item in items for c in PERSONALISED
                               for order in ("mine-first", "mine-second")))
    return summarise(items, voices, held_scores, texts.done, verdicts.done if judge else None, profiles.done)


def scoring_voices(unseen: Sequence[Sequence[str]], reals: Sequence[Sequence[str]]) -> tuple[list[voice.Voice], dict]:
    """The voices that score: each author's held-out texts and texts the model was not shown, against the
    others'; and each held-out text's scores under every voice, by voices that learned without it."""
    groups = [list(dict.fromkeys([*r, *u])) for u, r in zip(unseen, reals, strict=True)]
    voices, matrix = voice.learn_scored(groups)
    rows, at = {}, 0
    for group in groups:
        for text in group:
            rows[text] = matrix[at]
            at += 1
    return voices, rows


def measured(matrix: np.ndarray, owners: np.ndarray) -> dict:
    """A texts x voices score matrix, read for its texts' authors."""
    if len(owners) == 0:
        return {"n": 0}
    own = matrix[np.arange(len(owners)), owners]
    return {"n": len(owners), "verifier_mean": round(float(own.mean()), 3),
            "sounds_like_them": round(float((own >= 0.5).mean()), 3),
            "attributed": round(float((matrix.argmax(axis=1) == owners).mean()), 3)}


def summarise(items: Sequence[Item], voices: Sequence[voice.Voice], held_scores: dict, texts: dict,
              verdicts: dict | None, profiles: dict) -> dict:
    """Per condition, the verifier's mean score under the author's voice, the share of texts it
    attributes to their author among all, and the judge's win rate over `none`; the authors' own
    held-out texts and other authors' as references, each scored without it."""
    report: dict = {"conditions": {}, "reference": {}}
    for condition in CONDITIONS:
        rows = [texts.get(f"{i.key}:{condition}") for i in items]
        done = [r for r in rows if r is not None and r["text"].strip()]
        matrix = voice.scores(voices, [r["text"] for r in done]) if done else np.zeros((0, len(voices)))
        short = np.array([voice.words_in(r["text"]) < voice.MIN_WORDS for r in done], dtype=bool)  # scored 0
        report["conditions"][condition] = measured(matrix, np.array([r["author"] for r in done], dtype=int)) | {
            "failed": len(rows) - len(done), "too_short": int(short.sum())}
    reals = [i for i in items if i.real in held_scores]
    matrix = np.vstack([held_scores[i.real] for i in reals]) if reals else np.zeros((0, len(voices)))
    owners = np.array([i.author for i in reals], dtype=int)
    report["reference"]["real_texts"] = measured(matrix, owners)
    if len(reals):
        others = np.ones(matrix.shape, dtype=bool)
        others[np.arange(len(owners)), owners] = False
        report["reference"]["other_authors_texts"] = {"n": int(others.sum()),
                                                      "verifier_mean": round(float(matrix[others].mean()), 3)}
    if verdicts is not None:
        wins: dict[str, list[float]] = defaultdict(list)
        by_pair: dict[tuple[str, str], list] = defaultdict(list)
        for v in verdicts.values():
            by_pair[v["item"], v["condition"]].append(v["personalised"])
        for (_, condition), picks in by_pair.items():
            if len(picks) == 2 and None not in picks:  # both orders, or position bias goes unseen
                wins[condition].append(sum(picks) / 2)  # a flip with the order is half a win
        for condition in PERSONALISED:
            report["conditions"][condition]["judge_win_rate_over_none"] = (
                round(float(np.mean(wins[condition])), 3) if wins[condition] else None)
    written_for = {i.author for i in items}
    report["hypotheses"] = {"authors": len(written_for), "mean_per_author": round(float(np.mean(
        [len(p["hypotheses"]) for p in profiles.values()])), 2) if profiles else 0,
        "failed": len(written_for) - len(profiles)}
    return report


def render(report: dict) -> str:
    lines = ["condition: verifier mean (its author's voice) · sounds like them (≥ 0.5) · attributed to them"
             + (" · judge win rate over none" if "judge" in report["run"] else "")]
    for condition, row in report["conditions"].items():
        if not row.get("n"):
            lines.append(f"  {condition}: no texts ({row.get('failed', 0)} failed)")
            continue
        judged = row.get("judge_win_rate_over_none")
        lines.append(f"  {condition} (n={row['n']}): {row['verifier_mean']:.3f} · {row['sounds_like_them']:.0%} · "
                     f"{row['attributed']:.0%}" + (f" · {judged:.0%}" if judged is not None else "")
                     + (f"  ({row['failed']} failed)" if row["failed"] else ""))
    real, floor = report["reference"]["real_texts"], report["reference"].get("other_authors_texts")
    lines.append(f"  the authors' own held-out texts (n={real['n']}): {real['verifier_mean']:.3f} · "
                 f"{real['sounds_like_them']:.0%} · "
                 f"{real['attributed']:.0%}" + (f"; other authors' texts: {floor['verifier_mean']:.3f}" if floor else ""))
    return "\n".join(lines)


def draw_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = [c for c, row in report["conditions"].items() if row.get("n")]
    figure, axes = pyplot.subplots(figsize=(7, 4))
    axes.bar([f"{c}\nn={report['conditions'][c]['n']}" for c in names],
             [report["conditions"][c]["verifier_mean"] for c in names], color="#4c78a8", label="verifier: generated texts")
    real, floor = report["reference"]["real_texts"], report["reference"].get("other_authors_texts")
    axes.axhline(real["verifier_mean"], color="#4c9f70", linestyle="--", label="the authors' own texts")
    if floor:
        axes.axhline(floor["verifier_mean"], color="#c8553d", linestyle=":", label="other authors' texts")
    judged = [(c, report["conditions"][c].get("judge_win_rate_over_none")) for c in names]
    if any(w is not None for _, w in judged):
        axes.plot([f"{c}\nn={report['conditions'][c]['n']}" for c, w in judged if w is not None],
                  [w for _, w in judged if w is not None], "o",
                  color="#e3b23c", label="judge: win rate over none")
    axes.set_ylim(0, 1)
    axes.set_ylabel("mean score")
    axes.set_title(f"Does it write like them? {report['run']['dataset']}, k = {report['run']['k']}")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def identity(dataset: str, path: Path, *, k: int, authors: int | None, per_author: int | None, judge: bool,
             models: dict[str, str]) -> dict:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(file.name.encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return {"dataset": dataset, "files": digest.hexdigest()[:16], "k": k, "authors": authors, "per_author": per_author,
            "models": models} | ({"judge": True} if judge else {})


def evaluate(settings: Settings, *, dataset: str, path: Path, out: Path, k: int,
             authors: int | None, per_author: int | None, judge: bool, concurrency: int, progress: Progress) -> dict:
    """Run (or resume) the evaluation into `out`; writes report.json and chart.png there."""
    from assistant.measure.voice_data import DatasetError

    require_chart_library()
    everyone = load(dataset, path)
    items = items_of(everyone[:authors] if authors else everyone, per_author)
    run_id = identity(dataset, path, k=k, authors=authors, per_author=per_author, judge=judge,
                      models={p: settings.model_for(p) for p in ("chat", "hypotheses")})
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "run.json"
    if marker.exists() and {k_: v for k_, v in json.loads(marker.read_text()).items() if k_ != "judge"} != {
            k_: v for k_, v in run_id.items() if k_ != "judge"}:
        raise DatasetError(f"{out} holds results of another run (set, k, authors or models differ); "
                           "choose another --out folder or delete this one")
    marker.write_text(json.dumps(run_id, indent=2))
    async def with_model() -> dict:
        from assistant.wiring import build_gateway

        gateway = build_gateway(settings)
        try:  # every author's voice is learned against all the others', whichever of them are written for
            return await run(gateway, everyone, items, k=k, out=out, judge=judge, concurrency=concurrency,
                             progress=progress)
        finally:
            await gateway.close()

    summary = asyncio.run(with_model())
    report = {"run": run_id, "items": len(items)} | summary
    (out / "report.json").write_text(json.dumps(report, indent=2))
    draw_chart(report, out / "chart.png")
    return report
