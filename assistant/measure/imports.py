"""`hyperalign bench import`: how fast a history comes in, how much memory that takes, and how soon the
first profile is there, for generated ChatGPT exports of a given number of messages (no real export).

Each size is measured in a process of its own (`python -m assistant.measure.imports FILE DATABASE ...`),
so its peak memory (the kernel's high-water mark of the process, ru_maxrss) is the import's and not
the benchmark's; the process's memory just before it opens the file is given beside it. The first
profile is learned from a stand-in model (assistant.measure.stand_in_server) with a set latency, so
the figure is the app's time plus that latency.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from assistant.measure.synthetic import sentence

PER_CONVERSATION = 20  # messages in each generated conversation, the person's and the assistant's in turn


def write_export(path: Path, *, messages: int, seed: int = 5) -> dict:
    """A ChatGPT conversations.json of `messages` messages, written a conversation at a time."""
    rng = random.Random(seed)
    conversations = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        left = messages
        while left > 0:
            size = min(PER_CONVERSATION, left)
            if conversations:
                out.write(",")
            out.write(json.dumps(_conversation(rng, conversations, size)))
            conversations, left = conversations + 1, left - size
        out.write("]")
    return {"conversations": conversations, "messages": messages, "bytes": path.stat().st_size}


def _conversation(rng: random.Random, number: int, size: int) -> dict:
    mapping: dict[str, dict] = {"root": {"id": "root", "message": None, "parent": None, "children": []}}
    parent, at = "root", 1_600_000_000 + number * 86_400
    for n in range(size):
        role = "user" if n % 2 == 0 else "assistant"
        words = rng.randint(4, 60) if role == "user" else rng.randint(40, 200)
        text = " ".join(sentence(rng) for _ in range(max(1, words // 8)))
        node = f"c{number}-m{n}"
        mapping[node] = {"id": node, "parent": parent, "children": [], "message": {
            "id": node, "author": {"role": role}, "create_time": at + n * 30,
            "content": {"content_type": "text", "parts": [text]}}}
        mapping[parent]["children"].append(node)
        parent = node
    return {"id": f"conversation-{number}", "title": f"Conversation {number}", "create_time": at,
            "current_node": parent, "mapping": mapping}


def _rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure(path: Path, database_url: str, *, latency_ms: float, embed: bool) -> dict:
    """Import `path` for a new person on `database_url`, as the app does: read and store, learn the first
    profile, count the style card, and (with `embed`) embed everything for recall. In this process."""
    import asyncio

    from assistant.background import HypothesisJobs
    from assistant.imports import recount_style, undo_import
    from assistant.llm import OpenAIGateway, Purpose
    from assistant.measure.stand_in_server import StandInServer
    from memory import store
    from memory.db import make_engine, migrate, read, write
    from memory.embed import Embedder
    from memory.importing import import_file
    from memory.models import HypothesisJob, stored_id
    from memory.vectors import embed_pending

    engine = make_engine(database_url)
    migrate(engine)
    user_id = stored_id(write(engine, lambda s: store.create_user(s, identifier="importer", password="bench-password")).id)
    before = _rss_mb()
    started = time.perf_counter()
    done = import_file(engine, user_id=user_id, path=path, max_bytes=64 * 2**30)
    stored = time.perf_counter()
    peak_storing = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    async def first_profile() -> HypothesisJob | None:
        with StandInServer(latency_ms=latency_ms) as model:
            gateway = OpenAIGateway(api_key=None, base_url=model.base_url, models=dict.fromkeys(Purpose, "stand-in"),
                                    windows=dict.fromkeys(Purpose, 8192), timeout=30, max_retries=0)
            jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=Embedder(), every=6)
            try:
                job_id = await jobs.after_import(user_id)
                await jobs.settle()
            finally:
                await gateway.close()
        return read(engine, lambda s: s.get(HypothesisJob, job_id)) if job_id is not None else None

    job = asyncio.run(first_profile())  # first, as the app does: the person waits for it
    profiled = time.perf_counter()
    recount_style(engine, user_id=user_id)
    counted = time.perf_counter()
    peak_before_embedding = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "messages": done.messages, "conversations": done.conversations,
        "read_and_store_s": round(stored - started, 2),
        "messages_per_s": round(done.messages / (stored - started)),
        "style_card_s": round(counted - profiled, 2),
        "first_profile_s": round(profiled - started, 2),
        "profile_entries": job.changes if job is not None else 0,
        "profile_samples": job.samples if job is not None else 0,
        "rss_before_mb": round(before),
        "peak_rss_storing_mb": round(peak_storing),
        "peak_rss_mb": round(peak_before_embedding),
    }
    if embed:
        embedder = Embedder()
        embedder.load()
        began = time.perf_counter()
        embedded = embed_pending(engine, embedder, user_id=user_id)
        figures["embedded"] = embedded
        figures["embedded_per_s"] = round(embedded / (time.perf_counter() - began))
        figures["peak_rss_with_embedding_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    began = time.perf_counter()
    undo_import(engine, None, user_id=user_id, batch_id=stored_id(done.batch_id))
    figures["undo_s"] = round(time.perf_counter() - began, 2)
    engine.dispose()
    return figures


def run_import_bench(*, sizes: list[int], latency_ms: float, embed: bool, database_url: str | None,
                     say: Callable[[str], None] = print) -> dict:
    """Each size: a generated export, imported by a process of its own onto a fresh database."""
    results = []
    with tempfile.TemporaryDirectory(prefix="hyperalign-bench-import-") as folder:
        for size in sizes:
            export = Path(folder) / f"conversations-{size}.json"
            made = write_export(export, messages=size)
            say(f"{size} messages: export of {made['bytes'] / 2**20:.1f} MB, {made['conversations']} conversations")
            url = database_url or f"sqlite:///{Path(folder) / f'import-{size}.db'}"
            child = subprocess.run([sys.executable, "-m", "assistant.measure.imports", str(export), url,
                                    str(latency_ms), "embed" if embed else "no-embed"],
                                   capture_output=True, text=True, check=False)
            if child.returncode != 0:
                raise RuntimeError(f"the import of {size} messages failed:\n{child.stderr[-2000:]}")
            figures = {"export_mb": round(made["bytes"] / 2**20, 1), **json.loads(child.stdout.splitlines()[-1])}
            say(f"  {figures}")
            results.append(figures)
            export.unlink()
    return {"latency_ms": latency_ms, "database": (database_url or "sqlite").split(":", 1)[0], "sizes": results}


def render(result: dict) -> str:
    lines = [f"bench import ({result['database']}, stand-in model {result['latency_ms']:.0f} ms):",
             f"{'messages':>9} {'export':>8} {'msgs/s':>7} {'store':>7} {'style':>6} {'profile':>8} "
             f"{'RSS before':>10} {'peak storing':>12} {'peak':>6} {'undo':>7} {'embed/s':>8}"]
    for f in result["sizes"]:
        lines.append(f"{f['messages']:>9} {f['export_mb']:>6.1f}MB {f['messages_per_s']:>7} {f['read_and_store_s']:>6.1f}s "
                     f"{f['style_card_s']:>5.1f}s {f['first_profile_s']:>7.1f}s {f['rss_before_mb']:>8}MB "
                     f"{f['peak_rss_storing_mb']:>10}MB {f['peak_rss_mb']:>4}MB {f['undo_s']:>6.1f}s "
                     f"{f.get('embedded_per_s', '-'):>8}")
    lines.append("profile: seconds from the start of the import until the first profile is stored (reading, "
                 "storing, one inference over a bounded sample). peak: the process's high-water "
                 "mark after the profile (the model client loaded too). undo: the whole import taken back.")
    return "\n".join(lines)


if __name__ == "__main__":  # one measurement, in a process of its own: FILE DATABASE LATENCY_MS embed|no-embed
    print(json.dumps(measure(Path(sys.argv[1]), sys.argv[2], latency_ms=float(sys.argv[3]),
                             embed=sys.argv[4] == "embed")))
