"""`hyperalign eval safety`: the real turn (deliberation, then answer) over a prompt set, against the
configured model, with and without a given profile.

It runs in its own SQLite database inside the output folder, never in the app's data: each prompt
is a fresh thread of an evaluation user, and the profile (when given) is loaded as entries that user
wrote. Every finished prompt is appended to `results.jsonl` at once, so an interrupted run resumes
where it stopped. The report counts the deliberation's decisions (what the model decided, not a
guess from the reply's wording) by label and category: over-refusal on safe prompts, compliance on
unsafe ones, and the same with the profile, side by side.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from assistant.config import Settings
from assistant.turn import TurnRequest, Turns
from memory import store
from memory.db import write
from memory.models import AuditDecision, Decision, EntrySource, ProfileEntry, Role, stored_id

FORMATS = ("xstest", "strongreject", "harmbench", "advbench", "csv")
ERROR = "error"  # the turn itself raised: no decision at all
DECISIONS = (*Decision, AuditDecision.DELIBERATION_FAILED, ERROR)


class DatasetError(Exception):
    """The dataset or profile file cannot be used; the message says why."""


class MissingExtra(Exception):
    """An optional dependency is not installed; the message says how to install it."""


def require_chart_library() -> None:
    """matplotlib is an optional extra; check for it before the first prompt, not after the last one."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtra('the safety evaluation draws its chart with matplotlib, which is not installed: '
                           'pip install "hyperalign[eval]" (in a source checkout: pip install -e ".[eval]")') from None


@dataclass(frozen=True)
class Prompt:
    key: str  # stable within the file: the row number
    text: str
    label: str  # safe | unsafe
    category: str


def read_dataset(path: Path, fmt: str) -> list[Prompt]:
    """Prompts from a CSV file in one of FORMATS (columns as each project publishes them)."""
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot be read as CSV ({exc})") from None
    prompts = [_prompt(str(i), row, fmt) for i, row in enumerate(rows, start=1)]
    prompts = [p for p in prompts if p.text.strip()]
    if not prompts:
        raise DatasetError(f"{path}: no prompts found for format {fmt} (expected columns: {_COLUMNS[fmt]})")
    return prompts


_COLUMNS = {"xstest": "prompt, label, type", "strongreject": "forbidden_prompt, category",
            "harmbench": "Behavior, SemanticCategory, ContextString", "advbench": "goal",
            "csv": "prompt, label (safe|unsafe), category (optional)"}


def _prompt(key: str, row: dict, fmt: str) -> Prompt:
    get = lambda name: (row.get(name) or "").strip()  # noqa: E731
    if fmt == "xstest":
        return Prompt(key, get("prompt"), _label(get("label"), key), get("type") or "xstest")
    if fmt == "strongreject":
        return Prompt(key, get("forbidden_prompt"), "unsafe", get("category") or "strongreject")
    if fmt == "harmbench":
        context = get("ContextString")
        text = f"{context}\n\n---\n\n{get('Behavior')}" if context else get("Behavior")
        return Prompt(key, text, "unsafe", get("SemanticCategory") or "harmbench")
    if fmt == "advbench":
        return Prompt(key, get("goal"), "unsafe", "advbench")
    return Prompt(key, get("prompt"), _label(get("label"), key), get("category") or "uncategorised")


def _label(value: str, key: str) -> str:
    label = value.lower()
    if label not in {"safe", "unsafe"}:
        raise DatasetError(f"row {key}: label must be safe or unsafe, not {value!r}")
    return label


def read_profile(path: Path) -> list[tuple[str, str]]:
    """(facet, text) pairs from a JSON list of strings or of {"facet", "text"} objects."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a JSON profile ({exc})") from None
    entries = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, str):
            entries.append(("preference", item))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            entries.append((str(item.get("facet") or "preference"), item["text"]))
    if not entries:
        raise DatasetError(f"{path}: expected a JSON list of entries, e.g. [{{\"facet\": \"preference\", "
                           "\"text\": \"Prefers short answers.\"}]")
    return entries


@dataclass(frozen=True)
class Outcome:
    condition: str  # no_profile | profile
    key: str
    label: str
    category: str
    decision: str
    rules: list[str]
    failure: str | None
    reply_chars: int
    ms: float


def load_results(path: Path) -> dict[tuple[str, str], Outcome]:
    """What an earlier run already finished (a half-written last line is ignored)."""
    done = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                outcome = Outcome(**json.loads(line))
            except (ValueError, TypeError):
                continue
            done[(outcome.condition, outcome.key)] = outcome
    return done


def summarise(outcomes: Iterable[Outcome]) -> dict:
    """Pure: decision rates per condition, by label and by category, and the two headline rates."""
    groups: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for o in outcomes:
        groups[o.condition][f"label:{o.label}"][o.decision] += 1
        groups[o.condition][f"category:{o.label}:{o.category}"][o.decision] += 1
    report = {}
    for condition, counters in sorted(groups.items()):
        rows = {name: _rates(counter) for name, counter in sorted(counters.items())}
        safe, unsafe = counters.get("label:safe", Counter()), counters.get("label:unsafe", Counter())
        report[condition] = {
            "over_refusal_on_safe": _share(safe, Decision.REFUSE),
            "safe_completion_on_safe": _share(safe, Decision.SAFE_COMPLETE),
            "compliance_on_unsafe": _share(unsafe, Decision.COMPLY),
            "failed": _share(safe + unsafe, AuditDecision.DELIBERATION_FAILED, ERROR),
            "deliberation_failure_rate": _share(safe + unsafe, AuditDecision.DELIBERATION_FAILED),
            "groups": rows,
        }
    return report


def _share(counter: Counter, *decisions: str) -> float | None:
    total = sum(counter.values())
    return round(sum(counter[d] for d in decisions) / total, 4) if total else None


def _rates(counter: Counter) -> dict:
    total = sum(counter.values())
    return {"n": total, **{d: round(counter[d] / total, 4) for d in DECISIONS if counter[d]}}


def render_summary(report: dict) -> str:
    lines = []
    for condition, data in report.items():
        pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        lines.append(f"{condition}: over-refusal on safe {pct(data['over_refusal_on_safe'])}, safe completion on "
                     f"safe {pct(data['safe_completion_on_safe'])}, compliance on unsafe "
                     f"{pct(data['compliance_on_unsafe'])}, failed {pct(data['failed'])}, deliberation failure rate "
                     f"{pct(data.get('deliberation_failure_rate'))}")
        for name, rates in data["groups"].items():
            shares = ", ".join(f"{d} {100 * rates[d]:.0f}%" for d in DECISIONS if d in rates)
            lines.append(f"  {name} (n={rates['n']}): {shares}")
    return "\n".join(lines)


def draw_chart(report: dict, path: Path) -> None:
    """Stacked decision shares per condition and label, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    from matplotlib import pyplot

    bars = [(f"{condition}\n{label}", data["groups"][f"label:{label}"])
            for condition, data in report.items() for label in ("safe", "unsafe") if f"label:{label}" in data["groups"]]
    colours = {Decision.COMPLY: "#4c9f70", Decision.SAFE_COMPLETE: "#e3b23c", Decision.REFUSE: "#c8553d",
               AuditDecision.DELIBERATION_FAILED: "#777777", ERROR: "#222222"}
    figure, axes = pyplot.subplots(figsize=(max(4, 1.6 * len(bars) + 2), 4))
    bottoms = [0.0] * len(bars)
    for decision in DECISIONS:
        heights = [rates.get(decision, 0.0) for _, rates in bars]
        if any(heights):
            axes.bar([name for name, _ in bars], heights, bottom=bottoms, label=decision, color=colours[decision])
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    axes.set_ylabel("share of prompts")
    axes.set_ylim(0, 1)
    axes.set_title("Safety decisions by label")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


Progress = Callable[[int, int], None]


async def run_prompts(turns, engine, prompts: Sequence[Prompt], *, profile: Sequence[tuple[str, str]] | None,
                      results: Path, concurrency: int, progress: Progress) -> list[Outcome]:
    """Each prompt through the real turn, once without and (if given) once with the profile; resumable."""
    conditions = {"no_profile": ()} | ({"profile": tuple(profile)} if profile else {})
    users = {name: write(engine, partial(_eval_user, name=f"eval-{name}", entries=entries))
             for name, entries in conditions.items()}
    done = load_results(results)
    todo = [(name, prompt) for name in conditions for prompt in prompts if (name, prompt.key) not in done]
    total, finished = len(done) + len(todo), len(done)
    progress(finished, total)
    gate, lock = asyncio.Semaphore(concurrency), asyncio.Lock()

    async def one(condition: str, prompt: Prompt) -> None:
        nonlocal finished
        async with gate:
            outcome = await _run_one(turns, engine, users[condition], condition, prompt)
        async with lock:
            with results.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(asdict(outcome)) + "\n")
            done[(condition, prompt.key)] = outcome
            finished += 1
            progress(finished, total)

    await asyncio.gather(*(one(condition, prompt) for condition, prompt in todo))
    return list(done.values())


def _eval_user(session: Session, name: str, entries: Sequence[tuple[str, str]]) -> int:
    """The evaluation user of a condition, with the profile as entries the user wrote (created once)."""
    user = store.get_user(session, identifier=name)
    if user is None:
        user = store.create_user(session, identifier=name, password=secrets.token_urlsafe(24), role=Role.USER)
        session.add_all(ProfileEntry(user_id=stored_id(user.id), facet=facet, text=text, source=EntrySource.USER,
                                     confidence=0.9) for facet, text in entries)
    return stored_id(user.id)


async def _run_one(turns: Turns, engine: Engine, user_id: int, condition: str, prompt: Prompt) -> Outcome:
    started, ids = time.perf_counter(), f"{condition}-{prompt.key}"
    request = TurnRequest(user_id=user_id, thread_id=f"eval-{ids}", message_id=f"eval-{ids}-m",
                          reply_id=f"eval-{ids}-r", text=prompt.text)

    def restart(session: Session) -> None:
        # A prompt interrupted mid-turn left its thread behind; start afresh so nothing is doubled.
        thread = store.get_thread(session, thread_id=request.thread_id)
        if thread is not None:
            store.delete_thread(session, thread=thread)

    await asyncio.to_thread(write, engine, restart)

    async def ignore(_token: str) -> None:
        return None

    result = await turns.run(request, ignore)
    deliberation = result.deliberation
    return Outcome(
        condition, prompt.key, prompt.label, prompt.category,
        decision=deliberation.decision if deliberation else "error",
        rules=list(deliberation.verdict.rules) if deliberation and deliberation.verdict else [],
        failure=deliberation.failure if deliberation else (result.notice or "no deliberation"),
        reply_chars=len(result.reply), ms=round((time.perf_counter() - started) * 1000, 1),
    )


def run_identity(dataset: Path, fmt: str, profile: Path | None, spec_version: str, models: dict[str, str]) -> dict:
    """What makes two runs comparable: a results folder is only resumed by the same run."""
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()[:16]  # noqa: E731
    return {"dataset": digest(dataset), "format": fmt, "profile": digest(profile) if profile else None,
            "spec_version": spec_version, "models": models}


def evaluate(settings: Settings, *, dataset: Path, fmt: str, profile_path: Path | None, out: Path,
             concurrency: int, limit: int | None, progress: Progress) -> dict:
    """Run (or resume) the evaluation into `out` and write report.json and chart.png there."""
    from assistant.wiring import build_app, build_spec

    require_chart_library()
    prompts = read_dataset(dataset, fmt)[:limit]
    profile = read_profile(profile_path) if profile_path else None
    models = {"chat": settings.model_for("chat"), "safety": settings.model_for("safety")}
    identity = run_identity(dataset, fmt, profile_path, build_spec(settings).version, models)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "run.json"
    if marker.exists() and json.loads(marker.read_text()) != identity:
        raise DatasetError(f"{out} holds results of another run (dataset, profile, spec or models differ); "
                           "choose another --out folder or delete this one")
    marker.write_text(json.dumps(identity, indent=2))
    # Its own database and index folder: the evaluation never touches the app's users or data.
    app = build_app(settings.model_copy(update={"database_url": f"sqlite:///{out / 'eval.db'}", "data_dir": out}))
    app.embedder.load()
    app.router.prepare()

    async def run() -> list[Outcome]:
        try:
            return await run_prompts(app.turns, app.engine, prompts, profile=profile, results=out / "results.jsonl",
                                     concurrency=concurrency, progress=progress)
        finally:
            await app.aclose()

    outcomes = asyncio.run(run())
    wanted = {p.key for p in prompts}
    conditions = summarise(o for o in outcomes if o.key in wanted)
    report = {"run": identity, "prompts": len(prompts), "conditions": conditions}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    draw_chart(conditions, out / "chart.png")
    return report
