"""`hyperalign bench voice`: how well hypotheses.voice tells a person's writing from other people's, with k
of their texts to learn from, on CCAT50 or CMCC (assistant.measure.voice_data reads them).

For each k and each draw of demonstrations (seeded, so runs repeat), every author's voice is learned
from k of their texts against the other authors' demonstrations, as a person's is against the other
people of an install. Then every held-out text is scored under every voice:
- attribution: the share of held-out texts whose best-scoring voice is their author's;
- verification ROC AUC: over all (text, voice) pairs, a pair being positive when the voice's author
  wrote the text (one positive and N-1 negatives a text).

Beside the verifier (topic-masked: the app's; and `plain`, which keeps topic words, for comparison)
the same protocol measures the issue's baselines: a plain TF-IDF centroid over character 3-5-grams
and over word 1-2-grams. CMCC is also measured across genres: learned from a person's e-mails, tested
on their essays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import sparse
from scipy.stats import rankdata

from assistant.measure.voice_data import EMAIL, ESSAY, Author
from hypotheses import voice

METHODS = ("verifier", "verifier-plain", "tfidf-char", "tfidf-word", "tfidf-char-log", "tfidf-word-log")
LABELS = {"verifier": "verifier, topic-masked (the app's)", "verifier-plain": "verifier, topic words kept",
          "tfidf-char": "baseline: TF-IDF centroid, char 3-5", "tfidf-word": "baseline: TF-IDF centroid, word 1-2",
          "tfidf-char-log": "baseline, log TF: char 3-5", "tfidf-word-log": "baseline, log TF: word 1-2"}


@dataclass(frozen=True)
class Split:
    name: str  # "ccat50", "cmcc", "cmcc email->essay"
    pools: list[list[str]]  # per author: the texts demonstrations are drawn from
    held_out: list[tuple[int, str]]  # (author index, text)


@dataclass(frozen=True)
class Row:
    split: str
    method: str
    k: int
    attribution: float
    auc: float
    draws: int
    learn_ms: float  # learning every author's voice at once, per author
    score_ms: float  # scoring one held-out text under every voice, per voice


def splits(dataset: str, authors: Sequence[Author]) -> list[Split]:
    own = Split(dataset, [[s.text for s in a.demonstrations] for a in authors],
                [(i, s.text) for i, a in enumerate(authors) for s in a.held_out])
    if dataset != "cmcc":
        return [own]
    every = [a.demonstrations + a.held_out for a in authors]
    across = Split(f"{dataset} {EMAIL}->{ESSAY}", [[s.text for s in texts if s.genre == EMAIL] for texts in every],
                   [(i, s.text) for i, texts in enumerate(every) for s in texts if s.genre == ESSAY])
    return [own, across]


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney: the chance a random positive pair outscores a random negative one (ties count half)."""
    ranks = rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def measure(matrix: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(attribution, AUC) of a texts x authors score matrix."""
    positive = np.zeros(matrix.shape, dtype=bool)
    positive[np.arange(len(truth)), truth] = True
    return float((matrix.argmax(axis=1) == truth).mean()), auc(matrix.ravel(), positive.ravel())


def draw(pools: Sequence[Sequence[str]], k: int, seed: int) -> list[list[str]]:
    """k texts an author (all, when they have fewer), the same for the same seed whatever the method."""
    picked = []
    for i, pool in enumerate(pools):
        rng = np.random.default_rng(1000 * seed + i)
        order = rng.permutation(len(pool))[:k]
        picked.append([pool[j] for j in sorted(order)])
    return picked


Scorer = Callable[[list[list[str]], list[str]], np.ndarray]


def verifier(view: str) -> Scorer:
    def score(groups: list[list[str]], texts: list[str]) -> np.ndarray:
        return voice.scores(voice.learn_many(groups, view=view), texts)

    return score


def tfidf_centroid(grams: Callable[[str], np.ndarray], *, log_tf: bool = False) -> Scorer:
    """The issue's baseline: term counts (or 1 + their log) times IDF (from the demonstrations), rows to
    unit length, an author's centroid the mean of their rows, the score a cosine. With this protocol raw
    counts give the issue's CCAT50 figures and log counts its CMCC figures (README, "Write as me: does it sound like you?")."""
    def matrix(texts: Sequence[str]) -> sparse.csr_matrix:
        rows = [np.unique(grams(t), return_counts=True) for t in texts]
        indptr = np.cumsum([0] + [len(i) for i, _ in rows])
        tf = np.concatenate([c for _, c in rows]).astype(np.float32)
        return sparse.csr_matrix((1 + np.log(tf) if log_tf else tf,
                                  np.concatenate([i for i, _ in rows]), indptr), shape=(len(texts), voice.DIM))

    def unit(m: sparse.csr_matrix) -> sparse.csr_matrix:
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        return (sparse.diags(1 / np.where(norms > 0, norms, 1)) @ m).tocsr()

    def score(groups: list[list[str]], texts: list[str]) -> np.ndarray:
        demos = matrix([t for g in groups for t in g])
        seen = np.bincount(demos.indices, minlength=voice.DIM)
        idf = np.where(seen > 0, np.log((1 + demos.shape[0]) / (1 + seen)) + 1, 0.0).astype(np.float32)
        rows = unit(demos @ sparse.diags(idf))
        owner = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])
        centroids = np.vstack([np.asarray(rows[owner == i].mean(axis=0)) for i in range(len(groups))])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        return np.asarray(unit(matrix(texts) @ sparse.diags(idf)) @ centroids.T)

    return score


def _chars(text: str) -> np.ndarray:
    return voice.char_grams(voice.normal_spacing(text))


def _words(text: str) -> np.ndarray:
    return voice.word_grams(voice.normal_spacing(text))


SCORERS: dict[str, Scorer] = {
    "verifier": verifier(voice.MASKED), "verifier-plain": verifier(voice.PLAIN),
    "tfidf-char": tfidf_centroid(_chars), "tfidf-word": tfidf_centroid(_words),
    "tfidf-char-log": tfidf_centroid(_chars, log_tf=True), "tfidf-word-log": tfidf_centroid(_words, log_tf=True),
}


def run(split: Split, *, ks: Sequence[int], seeds: int, methods: Sequence[str],
        progress: Callable[[str], None] | None = None) -> list[Row]:
    truth = np.array([i for i, _ in split.held_out])
    texts = [t for _, t in split.held_out]
    rows = []
    for method in methods:
        for k in ks:
            results = [measure(SCORERS[method](draw(split.pools, k, seed), texts), truth) for seed in range(seeds)]
            learn_ms, score_ms = _timing(method, draw(split.pools, k, 0), texts)
            attribution, area = np.mean(results, axis=0)
            rows.append(Row(split.name, method, k, round(float(attribution), 3), round(float(area), 3), seeds,
                            round(learn_ms, 2), round(score_ms, 3)))
            if progress is not None:
                progress(f"{split.name} {method} k={k}: attribution {attribution:.3f}, AUC {area:.3f}")
    return rows


def _timing(method: str, groups: list[list[str]], texts: list[str]) -> tuple[float, float]:
    """ms to learn a voice (all authors' at once, per author), and to score a text under one voice."""
    if not method.startswith("verifier"):
        return float("nan"), float("nan")
    started = time.perf_counter()
    voices = voice.learn_many(groups, view=voice.PLAIN if method.endswith("plain") else voice.MASKED)
    learned = time.perf_counter()
    voice.scores(voices, texts)
    scored = time.perf_counter()
    return 1000 * (learned - started) / len(groups), 1000 * (scored - learned) / (len(texts) * len(groups))


def render(rows: Sequence[Row], pools: dict[str, list[list[str]]]) -> str:
    lines = []
    for name in dict.fromkeys(r.split for r in rows):
        mine = [r for r in rows if r.split == name]
        ks = sorted({r.k for r in mine})
        lines += [f"{name}: attribution / verification AUC, by texts learned from (k)",
                  "| method | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
        for method in dict.fromkeys(r.method for r in mine):
            cells = {r.k: f"{r.attribution:.3f} / {r.auc:.3f}" for r in mine if r.method == method}
            lines.append(f"| {LABELS[method]} | " + " | ".join(cells.get(k, "") for k in ks) + " |")
        fewest = min(len(p) for p in pools[name])
        if ks[-1] > fewest:
            lines.append(f"Some authors have only {fewest} texts to learn from here: a larger k uses all of theirs.")
        timed = [r for r in mine if r.method == "verifier" and np.isfinite(r.learn_ms)]
        if timed:
            last = max(timed, key=lambda r: r.k)
            lines.append(f"verifier at k={last.k}: {last.learn_ms:.1f} ms to learn a voice (all at once, per author), "
                         f"{last.score_ms:.3f} ms to score a text under one voice; {last.draws} draws of demonstrations")
        lines.append("")
    return "\n".join(lines)


def as_json(rows: Sequence[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
