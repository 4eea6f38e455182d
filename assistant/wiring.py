"""The composition root: the one place that builds the engine, the model gateway and the services.

Nothing in the project builds a client, an engine or a model at import time; they are built here,
from validated settings, and closed here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from assistant.background import HypothesisJobs
from assistant.config import ConfigError, Settings
from assistant.llm import Gateway, OfflineModel, OpenAIGateway, Purpose
from assistant.safety.gate import SafetyGate
from assistant.safety.router import Router
from assistant.safety.spec import Spec, SpecError, load_spec
from assistant.turn import TurnLimits, Turns
from assistant.usage import UsageLog
from memory.db import make_engine, migrate
from memory.embed import Embedder
from memory.files import private_dir, tighten_tree
from memory.index import UserIndexes
from memory.vectors import embed_pending

logger = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    engine: Engine
    gateway: Gateway
    embedder: Embedder
    indexes: UserIndexes
    turns: Turns
    jobs: HypothesisJobs
    spec: Spec
    router: Router
    usage: UsageLog | None = None  # None offline: no model, nothing used

    def warm_up(self) -> None:
        """Load the embedding model in the background, then embed what waited for it. Returns at once."""

        def load_then_backfill() -> None:
            try:
                self.embedder.load()
                self.router.prepare()
                embed_pending(self.engine, self.embedder)
            except Exception:  # a background thread has no caller to raise to
                logger.exception("embedding warm-up failed; recall stays lexical-only")

        threading.Thread(target=load_then_backfill, name="embedder-warm-up", daemon=True).start()

    async def aclose(self) -> None:
        await self.turns.settle()
        await self.jobs.settle()
        await self.gateway.close()
        if self.usage is not None:
            await self.usage.settle()  # the last calls' records
        self.engine.dispose()


def build_engine(settings: Settings) -> Engine:
    private_dir(settings.data_dir)  # owner-only, an existing install's included (memory/files.py)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return engine


def build_gateway(settings: Settings, usage: UsageLog | None = None) -> Gateway:
    if settings.offline:
        return OfflineModel()
    return OpenAIGateway(
        meter=usage.record if usage is not None else None,
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        models={purpose: settings.model_for(purpose) for purpose in Purpose},
        windows={purpose: settings.context_for(purpose) for purpose in Purpose},
        thinking_opened=settings.reasoning_opened,
        timeout=settings.request_timeout,
        max_retries=settings.max_retries,
    )


def build_memory(settings: Settings, engine: Engine) -> tuple[Embedder, UserIndexes]:
    embedder = Embedder(settings.embedding_model, threads=1)  # the other core is the chat's (memory/embed.py)
    folder = settings.data_dir / "indexes"
    tighten_tree(folder)  # index files written before they were made owner-only
    indexes = UserIndexes(
        engine, model=embedder.model_name, dimension=lambda: embedder.dimension,
        capacity=settings.index_cache_users, folder=folder,
    )
    return embedder, indexes


def build_spec(settings: Settings) -> Spec:
    try:
        return load_spec(settings.safety_spec)
    except SpecError as exc:
        raise ConfigError(f"HYPERALIGN_SAFETY_SPEC: {exc}") from None


def build_app(settings: Settings) -> App:
    spec = build_spec(settings)  # first: a bad spec stops the app before anything is opened
    engine = build_engine(settings)
    usage = None if settings.offline else UsageLog(engine)
    gateway = build_gateway(settings, usage)
    embedder, indexes = build_memory(settings, engine)
    router = Router(spec, embedder.encode)
    # Offline there is no model to deliberate with; the offline reply answers nothing anyway.
    safety = None if gateway.offline else SafetyGate(spec=spec, router=router, gateway=gateway,
                                                      timeout=settings.safety_timeout)
    turns = Turns(engine=engine, gateway=gateway, embedder=embedder, indexes=indexes, limits=TurnLimits.of(settings),
                  safety=safety, usage=usage, embed_replies=settings.web_runs_jobs)
    jobs = HypothesisJobs(engine=engine, gateway=gateway, embedder=embedder, every=settings.infer_every,
                          usage=usage, daily_token_limit=settings.daily_token_limit, run_here=settings.web_runs_jobs)
    logger.info("app built: database=%s model=%s spec=%s", engine.dialect.name, gateway.label, spec.version)
    return App(settings=settings, engine=engine, gateway=gateway, embedder=embedder, indexes=indexes, turns=turns,
               jobs=jobs, spec=spec, router=router, usage=usage)
