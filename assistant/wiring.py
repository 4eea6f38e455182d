"""The composition root: the one place that builds the engine, the model gateway and the services.

Nothing in the project builds a client, an engine or a model at import time; they are built here,
from validated settings, and closed here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from assistant.config import Settings
from assistant.llm import Gateway, OfflineModel, OpenAIGateway, Purpose
from assistant.turn import Turns
from memory.db import make_engine, migrate

logger = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    engine: Engine
    gateway: Gateway
    turns: Turns

    async def aclose(self) -> None:
        await self.gateway.close()
        self.engine.dispose()


def build_engine(settings: Settings) -> Engine:
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return engine


def build_gateway(settings: Settings) -> Gateway:
    if settings.offline:
        return OfflineModel()
    return OpenAIGateway(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        models={
            Purpose.CHAT: settings.chat_model,
            Purpose.SAFETY: settings.safety_model,
            Purpose.HYPOTHESES: settings.hypotheses_model,
        },
        timeout=settings.request_timeout,
        max_retries=settings.max_retries,
    )


def build_app(settings: Settings) -> App:
    engine = build_engine(settings)
    gateway = build_gateway(settings)
    turns = Turns(
        engine=engine,
        gateway=gateway,
        max_message_chars=settings.max_message_chars,
        history_messages=settings.history_messages,
    )
    logger.info("app built: database=%s model=%s", engine.dialect.name, gateway.label)
    return App(settings=settings, engine=engine, gateway=gateway, turns=turns)
