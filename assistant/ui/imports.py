"""`/api/me/imports`: a person brings their history from the profile panel (the CLI's `hyperalign import`
does the same from a shell).

- `POST /api/me/imports?name=FILE`: the file's bytes as the body (`application/octet-stream`, which no
  form of another site can send without a preflight, and origins.py answers that only for listed
  origins). The name says what kind of file it is and is checked before a byte is read; the size is
  checked against HYPERALIGN_IMPORT_LIMIT_MB as declared and again as it arrives. The file goes to a
  private folder under the data directory and is deleted once read. Answers 202 at once: the import
  runs in the background, since a large export takes longer than a proxy waits for an answer.
- `GET /api/me/imports`: the person's imports (newest first) and, while one runs in this process, its
  stage and counts: receiving the file, reading it, learning the first profile from it (then it is
  embedded for recall in the background).
- `DELETE /api/me/imports/{id}`: undo one import entirely (assistant.imports.undo_import): 202, then in
  the background, followed as an import is.

One import at a time per person (409 while one runs here). Every answer is about the signed-in person
only: the user comes from the sign-in token, and another's import id answers 404 like a missing one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.requests import ClientDisconnect

from assistant.background import HypothesisJobs, TaskSet
from assistant.imports import learn_from_import, undo_import
from assistant.ui.inputs import path_id
from assistant.ui.routes import install_first, signed_in_account
from memory.db import read
from memory.embed import Embedder
from memory.files import private_dir
from memory.history import UnreadableImport, kind_of
from memory.importing import Imported, StillImporting, batch_of, batches, counted, import_file
from memory.index import UserIndexes
from memory.models import HypothesisJob, ImportBatch, ImportStatus, JobStatus, stored_id
from memory.vectors import embed_pending

logger = logging.getLogger(__name__)
IMPORT_PATH = "/api/me/imports"
ImportId = Annotated[int, path_id("batch_id", "That import does not exist (it may have been undone).")]
UNSAFE_NAME = re.compile(r"[^\w. ()-]+")
WRITE_EVERY = 1 << 20  # upload bytes gathered before each write to disk (off the event loop)
LEFTOVER_S = 6 * 3600  # an upload folder this old belongs to no live import


def clean_name(raw: str | None) -> str:
    """The file's own name (no folders), in characters that cannot mean anything to a path or a shell,
    short enough for any file system (200 bytes, its ending kept: the ending says what kind it is)."""
    name = UNSAFE_NAME.sub("_", Path((raw or "").replace("\\", "/")).name).strip(" .")
    stem, dot, ending = name.rpartition(".")
    if dot and len(ending.encode()) <= 16:
        name = _cut(stem, 200 - len(ending.encode()) - 1) + "." + ending
    else:
        name = _cut(name, 200)
    if not name.strip("."):
        raise HTTPException(status_code=400, detail="Say which file this is: ?name=conversations.json, say.")
    return name


def _cut(text: str, size: int) -> str:
    return text.encode()[:size].decode(errors="ignore")


@dataclass
class Progress:
    """An import this process runs for one person, as the panel shows it."""

    file_name: str
    # uploading -> reading -> learning -> done | failed; or undoing -> undone | failed
    stage: str = "uploading"
    conversations: int = 0
    messages: int = 0
    texts: int = 0
    summary: str | None = None
    error: str | None = None
    batch_id: int | None = None
    job_id: int | None = None
    profile: str | None = None  # what the first profile job did
    note: str | None = None  # the steps after storing that failed: what was stored stays
    steps_done: bool = False  # the steps after storing have all run (the profile's job may still be running)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        """Still adding rows: a second import, or an undo, waits. Learning (a model call) does not count:
        the job drops evidence undone meanwhile (hypotheses.job._still_there)."""
        return self.stage in ("uploading", "reading", "undoing")

    def heard(self, counts: Imported) -> None:
        self.conversations, self.messages, self.texts = counts.conversations, counts.messages, counts.texts


def batch_view(batch: ImportBatch) -> dict:
    return {"id": batch.id, "file_name": batch.file_name, "source": batch.source, "status": str(batch.status),
            "conversations": batch.conversations, "messages": batch.messages, "texts": batch.texts,
            "skipped": json.loads(batch.skipped_json or "{}"), "reason": batch.reason,
            "created_at": batch.created_at.isoformat()}


class ImportsApi:
    def __init__(self, engine: Engine, embedder: Embedder, indexes: UserIndexes, jobs: HypothesisJobs, *,
                 data_dir: Path, limit_bytes: int, embed_here: bool) -> None:
        """`embed_here`: embed what was imported in this process (else `hyperalign worker` catches up)."""
        self._engine, self._embedder, self._indexes, self._jobs = engine, embedder, indexes, jobs
        self._uploads, self._limit, self._embed_here = data_dir / "uploads", limit_bytes, embed_here
        self._now: dict[int, Progress] = {}
        self._tasks = TaskSet("import")

    async def _user_id(self, request: Request) -> int:
        return stored_id((await signed_in_account(self._engine, request)).id)

    def _too_large(self) -> HTTPException:
        return HTTPException(status_code=413, detail=f"That file is larger than the import limit of "
                                                     f"{self._limit // 2**20} MB.")

    async def upload(self, request: Request) -> JSONResponse:
        user_id = await self._user_id(request)
        name = clean_name(request.query_params.get("name"))
        try:
            kind_of(Path(name))
        except UnreadableImport as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._limit:
            raise self._too_large()
        running = self._now.get(user_id)
        if running is not None and running.busy:
            raise HTTPException(status_code=409, detail=f"{running.file_name} is still being imported; "
                                                        "bring the next file once it is done.")
        # Taken before the first byte is read (no await in between), so a second upload waits for this one.
        progress = self._now[user_id] = Progress(file_name=name)
        folder = self._uploads / secrets.token_hex(8)
        try:
            await asyncio.to_thread(private_dir, folder)
            await self._receive(request, folder / name)
        except BaseException:
            self._put_back(user_id, taken=progress, before=running)
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise
        progress.stage = "reading"
        self._tasks.spawn(self._run(user_id, folder, name, progress))
        return JSONResponse(asdict(progress), status_code=202)

    async def _receive(self, request: Request, path: Path) -> None:
        """The body to `path`, refused with 413 the moment it passes the limit, 400 if it is empty."""
        received, pending = 0, bytearray()
        with path.open("wb") as out:
            try:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > self._limit:
                        raise self._too_large()
                    pending += chunk
                    if len(pending) >= WRITE_EVERY:
                        await asyncio.to_thread(out.write, bytes(pending))
                        pending.clear()
            except ClientDisconnect:
                raise HTTPException(status_code=400, detail="The upload was cut off; nothing was imported.") from None
            await asyncio.to_thread(out.write, bytes(pending))
        if received == 0:
            raise HTTPException(status_code=400, detail="That file is empty.")

    async def _run(self, user_id: int, folder: Path, name: str, progress: Progress) -> None:
        """Read and store (import_file undoes a file that fails halfway: nothing is left half-done); then
        the first profile, the style card and the vectors, each of which may fail without losing what
        was stored."""
        try:
            done = await asyncio.to_thread(import_file, self._engine, user_id=user_id, path=folder / name,
                                           max_bytes=self._limit, progress=progress.heard)
        except UnreadableImport as exc:
            progress.stage, progress.error = "failed", str(exc)
            return
        except Exception:  # the import's boundary: say so, and keep the reason in the log
            logger.exception("import for user %s failed", user_id)
            progress.stage = "failed"
            progress.error = f"Importing {name} failed on our side; nothing of it was kept. Try again later."
            return
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        progress.heard(done)
        progress.summary, progress.batch_id, progress.skipped = done.line(), done.batch_id, done.skipped
        if done.conversations or done.texts or done.extended:
            progress.stage = "learning"
            await self._learn(user_id, progress)
        progress.stage = "learning" if progress.job_id is not None else "done"
        progress.steps_done = True  # from here on `_current` says when the job is over
        logger.info("import for user %s: %s, batch %s", user_id, progress.stage, progress.batch_id)

    async def _learn(self, user_id: int, progress: Progress) -> None:
        learned = await learn_from_import(self._engine, self._jobs, user_id=user_id)
        progress.job_id = learned.job_id
        for what in learned.failed:
            failed = f"Your history is stored, but {what} failed on our side; it is done again as you chat."
            progress.note = f"{progress.note} {failed}" if progress.note else failed
        if self._embed_here and self._embedder.ready:  # else `hyperalign worker` (or the next start) catches up
            self._tasks.spawn(asyncio.to_thread(embed_pending, self._engine, self._embedder, user_id=user_id))

    def _current(self, session, user_id: int) -> dict | None:
        progress = self._now.get(user_id)
        if progress is None:
            return None
        if progress.stage == "learning" and progress.steps_done and progress.job_id is not None:
            job = session.get(HypothesisJob, progress.job_id)
            if job is not None and job.status in (JobStatus.DONE, JobStatus.FAILED):
                progress.stage = "done"
                progress.profile = (f"{counted(job.changes, 'profile entry', 'profile entries')} learned from "
                                    f"{counted(job.samples, 'text')} of yours"
                                    if job.status is JobStatus.DONE else
                                    "The profile could not be learned this time; your next chats will try again.")
        return asdict(progress)

    async def listing(self, request: Request) -> JSONResponse:
        user_id = await self._user_id(request)

        def gather(session) -> dict:
            return {"current": self._current(session, user_id),
                    "imports": [batch_view(b) for b in batches(session, user_id=user_id)]}

        return JSONResponse(await asyncio.to_thread(read, self._engine, gather))

    async def undo(self, request: Request, batch_id: ImportId) -> JSONResponse:
        """Checked here (404, 409), then run in the background: a large history takes minutes to take back,
        longer than a proxy waits. The panel follows it as it follows an import."""
        user_id = await self._user_id(request)
        before = self._now.get(user_id)
        if before is not None and before.busy:
            raise HTTPException(status_code=409, detail=f"Wait for {before.file_name} to finish, then undo.")
        # Taken before the next await, as an upload takes it: no upload or second undo slips in meanwhile.
        progress = self._now[user_id] = Progress(file_name="", stage="undoing", batch_id=batch_id)
        batch = await asyncio.to_thread(read, self._engine, lambda s: batch_of(s, user_id=user_id, batch_id=batch_id))
        if batch is None or batch.status is ImportStatus.RUNNING:  # running: in another process (a replica, the CLI)
            self._put_back(user_id, taken=progress, before=before)
            if batch is None:
                raise HTTPException(status_code=404, detail="That import does not exist (it may have been undone).")
            raise HTTPException(status_code=409, detail="That import is still running: undo it once it is done.")
        progress.file_name, progress.conversations, progress.texts = batch.file_name, batch.conversations, batch.texts
        self._tasks.spawn(self._take_back(user_id, batch_id, progress))
        return JSONResponse(asdict(progress), status_code=202)

    def _put_back(self, user_id: int, *, taken: Progress, before: Progress | None) -> None:
        """What the panel showed before a refused request, unless something newer took its place."""
        if self._now.get(user_id) is taken:
            if before is None:
                del self._now[user_id]
            else:
                self._now[user_id] = before

    async def _take_back(self, user_id: int, batch_id: int, progress: Progress) -> None:
        try:
            undone = await asyncio.to_thread(undo_import, self._engine, self._indexes, user_id=user_id,
                                             batch_id=batch_id)
        except (LookupError, StillImporting) as exc:  # undone meanwhile, or taken up again elsewhere
            progress.stage, progress.error = "failed", str(exc)
            return
        except Exception:  # the undo's boundary; run again, it goes on where it stopped
            logger.exception("undoing import %s of user %s failed", batch_id, user_id)
            progress.stage = "failed"
            progress.error = f"Undoing {progress.file_name} stopped on our side; undo it again to finish."
            return
        progress.stage = "undone"
        progress.summary = (f"Import of {progress.file_name} undone: {counted(undone['messages'], 'message')} removed, "
                            f"{counted(undone['entries_withdrawn'], 'profile entry', 'profile entries')} withdrawn, "
                            f"{undone['entries_weakened']} weakened.")

    async def settle(self) -> None:
        await self._tasks.settle()

    def remove_leftovers(self, *, older_than_s: float = LEFTOVER_S) -> int:
        """Uploads a process that died left behind (a crash during an upload or an import); how many. Only
        old ones: another replica sharing the data folder may be receiving one now."""
        if not self._uploads.is_dir():
            return 0
        cutoff, removed = time.time() - older_than_s, 0
        for folder in self._uploads.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def install_imports(fastapi_app: FastAPI, api: ImportsApi) -> None:
    install_first(fastapi_app, [
        (IMPORT_PATH, api.upload, ["POST"]),
        (IMPORT_PATH, api.listing, ["GET"]),
        (IMPORT_PATH + "/{batch_id}", api.undo, ["DELETE"]),
    ])
