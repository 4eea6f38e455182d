"""Does a text sound like its person? An authorship verifier that needs no language model.

What it reads is the text *topic-masked* (Stamatatos 2017, "text distortion"): every word outside the
commonest English words has its letters turned into '*', every digit into '#'. What is left is how a
person writes, not what about: their function words, word lengths, punctuation, capitals and
contractions. Two views of it, hashed so no vocabulary is stored:
- character 3-5-grams of the text masked down to the 100 commonest words (spacing, punctuation,
  word shapes around "the", "of", "I");
- word 1-2-grams of the text masked down to the 300 commonest, of the words that survive (which of
  them a person uses, and in what order), each view log-scaled, IDF-weighted and unit-length.

A person's voice is a ridge classifier of their own texts against other people's (the impostors),
solved in its dual form, which is exact and small: texts, not features, make its size. Its raw
scores are mapped onto 0-1 by a logistic fit on leave-one-out scores, of their own texts and of the
others', so no text is scored by a model that learned it; with the few texts a person has, that fit
stays close to its prior (a fixed scale from the others' scores to theirs), so read it as a score,
not as a measured probability. The range their own texts score (leave-one-out) is what a new text is
shown against.

Why this and not the others: measured on CMCC (21 people, e-mails and essays) and CCAT50 (50
journalists), k texts a person (README, "Write as me: does it sound like you?"). In the experiments
behind the choice, Burrows' and Cosine Delta and function-word profiles needed background statistics
from the same corpus, and the General Impostors method was weaker and slower; among what `bench
voice` measures, the masked ridge is best on CMCC, and it is the one that judges how a text is
written when its topic is new. It needs no statistics of any corpus shipped.
The style card (hypotheses.style) counts some of the same habits for the prompt, in words; this
is the measured verdict. Pure: numpy and scipy, no I/O.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import sparse

from hypotheses.style import WORD  # a word is the same thing to the style card and to the verifier

# The 300 commonest English words, commonest first (general frequency lists agree on these to within a
# few places; the order only decides which 100 keep their letters in the character view).
COMMON_WORDS = tuple("""
the of and to a in is you that it he was for on are as with his they i at be this have from or one had
by but not what all were we when your can said there use an each which she do how their if will up
other about out many then them these so some her would make like him into has two more write go see
no way could my than been who its now people did get come made may part over new after also just
any where most know take me only little work year back our very through even good well before
should because much down day here find still think us those never say same again while last
might great old such own off why let something both life am place thing tell went right too
being need got really going want does don't it's i'm i've can't didn't that's there's let's you're
i'll i'd isn't doesn't won't wasn't aren't he's she's they're we're hers himself herself myself
yourself themselves itself ourselves whom whose whether though although however therefore thus
yet nor either neither every few several enough quite rather almost always often sometimes ever
already once since until unless upon among between against without within during under above
below across along around toward towards behind beyond per via yes okay ok oh well perhaps maybe
indeed actually probably certainly simply mostly usually really truly also instead anyway else
everyone everything someone anyone anything nothing nobody none another others each both much more
less least best better worse worst first next then later soon now today yesterday tomorrow here
there away out again further anyhow somehow about after before into onto from till shall must
ought cannot besides beneath despite except inside outside near past whatever whenever wherever
whoever either""".split())
COMMON_WORDS = tuple(dict.fromkeys(COMMON_WORDS))  # in order, once each
CHAR_KEPT = frozenset(COMMON_WORDS[:100])
WORD_KEPT = frozenset(COMMON_WORDS[:300])
BITS = 17  # per view: 131,072 buckets; a person's masked n-grams are a few thousand, so few collide
DIM = 2 << BITS  # both views side by side
BIAS_FEATURE = 10.0  # the constant feature's size: large, so the ridge hardly shrinks the bias towards 0
ALPHA = 1.0  # ridge penalty (on unit-length views; the measured sweet spot was flat around 1)
PRIOR_SLOPE, PRIOR_TEXTS = 6.0, 5.0  # the calibration's prior, on the others-to-person scale, and its weight
PRIOR_SIGMAS = 2.0  # with one text of the person's, the midpoint this many of the others' spreads above them
MIN_TEXTS = 3  # fewer of a person's texts: no verdict (one text is a topic, not a voice)
MIN_WORDS = 30  # a text shorter than this says too little to be scored

_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"\w+(?:['’]\w+)*")  # "don't" stays whole; "I" and "a" count
_PRIME = np.uint64(1_000_003)
_MASK64 = np.uint64((1 << 64) - 1)


def normal_spacing(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def masked(text: str, kept: frozenset[str]) -> str:
    """The text with its topic taken away: words outside `kept` become asterisks, letter for letter."""
    def hide(match: re.Match) -> str:
        word = match.group(0)
        return word if word.lower().replace("’", "'") in kept else "*" * len(word)

    return _DIGIT.sub("#", WORD.sub(hide, normal_spacing(text)))


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def words_in(text: str) -> int:
    """Words, with each Chinese or Japanese character and Korean syllable as one (they are not spaced)."""
    cjk = len(_CJK.findall(text))
    return len(WORD.findall(_CJK.sub(" ", text))) + cjk if cjk else len(WORD.findall(text))


def char_grams(text: str) -> np.ndarray:
    """Hashed character 3-5-grams, vectorised: a polynomial hash over the code points."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    parts = []
    for n in (3, 4, 5):
        if len(codes) < n:
            continue
        h = np.full(len(codes) - n + 1, n, dtype=np.uint64)
        for j in range(n):
            h = (h * _PRIME + codes[j:len(codes) - n + 1 + j]) & _MASK64
        parts.append(h)
    if not parts:
        return np.zeros(0, dtype=np.int64)
    mixed = np.concatenate(parts)
    mixed ^= mixed >> np.uint64(29)
    mixed = (mixed * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    mixed ^= mixed >> np.uint64(32)
    return (mixed & np.uint64((1 << BITS) - 1)).astype(np.int64)


@lru_cache(maxsize=8192)
def _word_hash(token: str) -> int:
    return zlib.crc32(token.encode("utf-8"))


def word_grams(text: str) -> np.ndarray:
    tokens = [t.replace("’", "'") for t in _TOKEN.findall(text.lower())]
    hashes = [_word_hash(t) for t in tokens]
    grams = hashes + [(a * 31 + b) ^ 0x9E3779B9 for a, b in zip(hashes, hashes[1:], strict=False)]
    return (np.asarray(grams, dtype=np.int64) & ((1 << BITS) - 1)) + (1 << BITS)


MASKED, PLAIN = "masked", "plain"  # PLAIN keeps the topic words: the benchmark's comparison, never the app's


def counts(text: str, view: str = MASKED) -> tuple[np.ndarray, np.ndarray]:
    """Both views of one text: (bucket indices, log-scaled counts), before IDF and length."""
    if view == PLAIN:
        plain = normal_spacing(text)
        buckets = np.concatenate([char_grams(plain), word_grams(plain)])
    else:
        buckets = np.concatenate([char_grams(masked(text, CHAR_KEPT)), word_grams(masked(text, WORD_KEPT))])
    index, n = np.unique(buckets, return_counts=True)
    return index, 1.0 + np.log(n)


def count_matrix(texts: Sequence[str], view: str = MASKED) -> sparse.csr_matrix:
    rows = [counts(t, view) for t in texts]
    indptr = np.cumsum([0] + [len(i) for i, _ in rows])
    indices = np.concatenate([i for i, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
    data = np.concatenate([v for _, v in rows]) if rows else np.zeros(0)
    return sparse.csr_matrix((data.astype(np.float32), indices, indptr), shape=(len(texts), DIM))


def idf_of(matrix: sparse.csr_matrix) -> np.ndarray:
    """Smooth IDF over the texts a voice learns from; a bucket none of them has gets the largest."""
    n = matrix.shape[0]
    df = np.bincount(matrix.indices, minlength=DIM)
    return (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)


def weighted(matrix: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """IDF, then each view of each text to unit length (so a long text counts as much as a short one)."""
    m = (matrix @ sparse.diags(idf)).tocsr()
    half = 1 << BITS
    sq = m.multiply(m).tocsr()
    char_norm = np.sqrt(np.asarray(sq[:, :half].sum(axis=1)).ravel())
    word_norm = np.sqrt(np.asarray(sq[:, half:].sum(axis=1)).ravel())
    row = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    norms = np.where(m.indices < half, char_norm[row], word_norm[row])
    m.data = (m.data / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return m


@dataclass(frozen=True)
class Calibration:
    """P(same person) = 1 / (1 + exp(-(slope * raw + offset)))."""
    slope: float
    offset: float

    def __call__(self, raw: np.ndarray | float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.slope * np.asarray(raw, dtype=np.float64) + self.offset, -40, 40)))


@dataclass(frozen=True)
class Voice:
    weights: np.ndarray  # over the weighted features (DIM), bias folded in as `bias`
    bias: float
    idf: np.ndarray
    calibration: Calibration
    own: tuple[float, float]  # the range the person's own texts score, each scored without it (10th-90th pct)
    texts: int  # how many of their texts it learned from
    view: str = MASKED
    own_scores: tuple[float, ...] = ()  # each of those texts' score without it, in the order given

    def representative(self, n: int) -> list[int]:
        """The n texts (their positions) that sound most like the person: exemplars chosen for style."""
        return sorted(range(len(self.own_scores)), key=lambda i: -self.own_scores[i])[:n]

    def raw(self, texts: Sequence[str]) -> np.ndarray:
        return weighted(count_matrix(texts, self.view), self.idf) @ self.weights + self.bias

    def score(self, text: str) -> float:
        """How much `text` sounds like the person, 0-1, on the scale their own texts are shown on. Under
        MIN_WORDS words a text says too little (a few words weigh as much as a page once each view is
        unit-length): refused, as it is for learning."""
        if words_in(text) < MIN_WORDS:
            raise TooLittle(f"a text of fewer than {MIN_WORDS} words is too short to tell")
        return float(self.calibration(self.raw([text]))[0])


class TooLittle(ValueError):
    """Not enough of a person's own writing to say how they write; the message says how much more."""


def usable(texts: Sequence[str]) -> list[str]:
    """The texts long enough to say how someone writes, each once (a text kept twice would pass for two
    that agree, and narrow the range their own texts are shown); `learn` reads only these, in this order."""
    seen: set[str] = set()
    kept = []
    for text in texts:
        key = normal_spacing(text).casefold()
        if key not in seen and words_in(text) >= MIN_WORDS:
            seen.add(key)
            kept.append(text)
    return kept


def learn(own: Sequence[str], others: Sequence[str], *, alpha: float = ALPHA) -> Voice:
    """A person's voice from their usable texts against other people's. Raises TooLittle under MIN_TEXTS."""
    own = usable(own)
    if len(own) < MIN_TEXTS:
        raise TooLittle(f"{len(own)} of your texts have {MIN_WORDS} words or more; {MIN_TEXTS} are needed")
    if not others:
        raise ValueError("a voice is learned against other people's texts; none were given")
    return learn_many([list(own)], others, alpha=alpha)[0]


def learn_many(groups: Sequence[Sequence[str]], background: Sequence[str] = (), *,
               alpha: float = ALPHA, view: str = MASKED) -> list[Voice]:
    """One voice per group of texts (a person's), each against all other groups and `background`: the
    people on one install, or the authors of a benchmark. One kernel, one solve for all of them."""
    return learn_scored(groups, background, alpha=alpha, view=view)[0]


def learn_scored(groups: Sequence[Sequence[str]], background: Sequence[str] = (), *,
                 alpha: float = ALPHA, view: str = MASKED) -> tuple[list[Voice], np.ndarray]:
    """`learn_many`, and every group text's calibrated score under every voice, each text scored by
    voices that learned without it (exact leave-one-out): texts x voices, in the groups' order."""
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("every voice needs at least one text of its person's")
    if len(groups) == 1 and not background:
        raise ValueError("a voice is learned against other people's texts; none were given")
    texts = [t for g in groups for t in g] + list(background)
    owner = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)] + [np.full(len(background), -1)])
    counted = count_matrix(texts, view)
    idf = idf_of(counted)
    x = weighted(counted, idf)
    kernel = (x @ x.T).toarray().astype(np.float64) + BIAS_FEATURE**2  # the bias, as a constant feature
    targets = np.where(owner[:, None] == np.arange(len(groups))[None, :], 1.0, -1.0)
    dual, loo = ridge_dual(kernel, targets, alpha)
    weights = np.asarray(x.T @ dual)  # DIM x groups
    voices, scored = [], np.zeros((int((owner >= 0).sum()), len(groups)))
    for g in range(len(groups)):
        mine = owner == g
        bias = BIAS_FEATURE**2 * float(dual[:, g].sum())
        calibration = fit_calibration(loo[mine, g], loo[~mine, g])
        own = calibration(loo[mine, g])
        scored[:, g] = calibration(loo[owner >= 0, g])
        voices.append(Voice(weights[:, g].astype(np.float32), bias, idf, calibration,
                            (float(np.percentile(own, 10)), float(np.percentile(own, 90))), int(mine.sum()), view,
                            tuple(float(v) for v in own)))
    return voices, scored


def ridge_dual(kernel: np.ndarray, targets: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Kernel ridge: the dual coefficients, and every training text's leave-one-out prediction, exactly
    and without refitting (f_-i(x_i) = (f_i - h_ii y_i) / (1 - h_ii), h the hat matrix K (K + aI)^-1)."""
    inverse = np.linalg.inv(kernel + alpha * np.eye(len(kernel)))
    dual = inverse @ targets
    hat = np.einsum("ij,ji->i", kernel, inverse)[:, None]
    return dual, (kernel @ dual - hat * targets) / (1.0 - hat)


def fit_calibration(positive: np.ndarray, negative: np.ndarray, *, steps: int = 50) -> Calibration:
    """Raw scores as a probability of "the same person wrote it", from leave-one-out raw scores of the
    person's texts and of the others'. The scale runs from the others' mean (0) to the person's (1): a
    text unlike anything the voice learned from lands near the ridge's bias, between the two, and must
    not look like the person only because the others' scores are tightly packed. A logistic fit on that
    scale, both classes weighted equally, is pulled towards a prior (the midpoint halfway, PRIOR_SLOPE
    steep) as strongly as PRIOR_TEXTS texts of the person's would pull: with a few texts the leave-one-out
    scores are too few and too pessimistic to trust alone (each was scored by a model that had one text
    fewer of the person's). With a single text there is no such score of theirs, and the others' spread
    stands in for the scale, the midpoint PRIOR_SIGMAS of it above their mean."""
    centre = float(np.mean(negative))
    gap = float(np.mean(positive)) - centre if len(positive) >= 2 else 0.0
    scale = max(gap, PRIOR_SIGMAS * 2 * (float(np.std(negative)) or 1.0))
    prior = np.array([PRIOR_SLOPE, -PRIOR_SLOPE / 2])
    z = (np.concatenate([positive, negative]).astype(np.float64) - centre) / scale
    label = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    # Each class weighs as much as the person's texts do, so the evidence grows with them, not with the install.
    weight = np.where(label == 1, 1.0, len(positive) / max(len(negative), 1))
    beta = prior.copy()
    for _ in range(steps):  # Newton-Raphson for the MAP fit
        p = 1.0 / (1.0 + np.exp(-np.clip(beta[0] * z + beta[1], -40, 40)))
        grad = np.array([np.sum(weight * (p - label) * z), np.sum(weight * (p - label))]) + (beta - prior) * PRIOR_TEXTS
        w = weight * p * (1 - p)
        hess = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]]) + np.eye(2) * PRIOR_TEXTS
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    slope = beta[0] / scale
    return Calibration(float(slope), float(beta[1] - slope * centre))


def scores(voices: Sequence[Voice], texts: Sequence[str]) -> np.ndarray:
    """texts x voices: each text's calibrated score under each voice (voices learned together share IDF)."""
    if not voices:
        return np.zeros((len(texts), 0))
    counted = {view: count_matrix(texts, view) for view in {v.view for v in voices}}
    columns = []
    shared = weighted(counted[voices[0].view], voices[0].idf)  # voices learned together share their IDF
    for v in voices:
        x = shared if v.idf is voices[0].idf and v.view == voices[0].view else weighted(counted[v.view], v.idf)
        columns.append(v.calibration(x @ v.weights + v.bias))
    # A few words weigh as much as a page once each view is unit-length, and a blank text lands on the
    # bias: under MIN_WORDS a text says nothing about anyone, and scores nothing.
    short = np.array([words_in(t) < MIN_WORDS for t in texts], dtype=bool)
    matrix = np.column_stack(columns)
    matrix[short] = 0.0
    return matrix


def describe(score: float, voice: Voice) -> str:
    low, high = voice.own
    return f"sounds like you: {score:.2f}; your own texts score {low:.2f}–{high:.2f}"
