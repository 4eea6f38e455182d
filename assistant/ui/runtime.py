"""Holds the one App of this process, built on first use from the settings (never at import)."""

from __future__ import annotations

import logging

from assistant.config import load_settings
from assistant.wiring import App, build_app

_app: App | None = None


def app() -> App:
    global _app
    if _app is None:
        settings = load_settings()
        logging.getLogger().setLevel(settings.log_level)
        _app = build_app(settings)
    return _app


async def close() -> None:
    global _app
    if _app is not None:
        await _app.aclose()
        _app = None
