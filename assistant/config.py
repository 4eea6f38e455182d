"""Settings: read once from the environment and `.env`, validated, then passed down.

Nothing here runs at import time. `load_settings()` is called by the composition root
(`assistant.wiring`) and by the CLI, so the app and every `hyperalign` command read the same
values and therefore the same data directory and database.

Our own settings carry the prefix `HYPERALIGN_`; the ecosystem's standard names
(`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `DATABASE_URL`, `CHAINLIT_AUTH_SECRET`) keep their names.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.context import is_openai_model


class ConfigError(Exception):
    """The configuration is unusable; the message says which setting and why."""


DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
OPENAI_CONTEXT, LOCAL_CONTEXT, MIN_CONTEXT = 128_000, 4_096, 1_024


class Registration(StrEnum):
    OPEN = "open"  # a new username with a password creates the account
    CLOSED = "closed"  # accounts are created by an operator: `hyperalign users add`


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "hyperalign"


class Settings(BaseSettings):
    """Every setting of the app. README's configuration table lists each one (a test checks it)."""

    model_config = SettingsConfigDict(
        env_prefix="HYPERALIGN_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the SQLite database and the generated auth secret live.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL"),
        description="SQLAlchemy URL; empty means a SQLite file in the data directory. "
        "postgresql://user:pass@host/db selects PostgreSQL.",
    )
    openai_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY"),
        description="Key for OpenAI or a compatible server. Without it and without "
        "OPENAI_BASE_URL the app runs in offline mode.",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL"),
        description="Base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio).",
    )
    auth_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CHAINLIT_AUTH_SECRET"),
        description="Signs login tokens; generated once and kept in the data directory when unset.",
    )
    chat_model: str = Field(default=DEFAULT_OPENAI_MODEL, description="Model that writes replies.")
    safety_model: str | None = Field(
        default=None, description="Model that deliberates over the safety spec; unset: the chat model on a server of "
        "your own (OPENAI_BASE_URL), gpt-4o-mini on OpenAI.",
    )
    hypotheses_model: str | None = Field(
        default=None, description="Model that infers hypotheses about users; unset: as for the safety model.",
    )
    chat_context_tokens: int = Field(
        default=0, ge=0, description="Context window of the chat model in tokens; every prompt is fitted to it. "
        "0: 128,000 for OpenAI's models, else 4,096 (Ollama's default; set what your server gives the model).",
    )
    safety_context_tokens: int = Field(
        default=0, ge=0, description="Context window of the safety model; 0: the chat model's when it is the "
        "same model, else as for the chat model.",
    )
    hypotheses_context_tokens: int = Field(
        default=0, ge=0, description="Context window of the hypotheses model; 0: as for the safety model.",
    )
    prices: str = Field(
        default="", description="Prices for the Usage page's cost estimate: MODEL=IN/OUT in dollars per million "
        "tokens, comma-separated (e.g. gpt-4o-mini=0.15/0.60); * prices every model not named. Empty: tokens only.",
    )
    daily_token_limit: int = Field(
        default=0, ge=0, description="Tokens one user's model calls may use per day (UTC): replies, deliberations "
        "and hypothesis jobs together; 0: no limit. Over it, messages are kept but not answered until midnight UTC.",
    )
    request_timeout: float = Field(default=60.0, gt=0, description="Seconds before a model request is abandoned.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Retries of a failed model request (429, 5xx, timeouts).")
    registration: Registration = Field(
        default=Registration.OPEN,
        description="open: signing in with a new username creates the account (the first becomes "
        "operator); closed: only `hyperalign users add` creates accounts.",
    )
    max_message_chars: int = Field(
        default=20_000, ge=100, description="Longest message sent to the model; longer ones are kept but not sent."
    )
    history_messages: int = Field(
        default=20, ge=0, le=200, description="How many recent messages of the thread each reply sees."
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Sentence-transformers model for recall: the bundled all-MiniLM-L6-v2, or a local model folder.",
    )
    recall_tokens: int = Field(
        default=600, ge=0, description="Budget (approximate tokens) for recalled past messages in a reply's prompt."
    )
    recall_results: int = Field(default=6, ge=0, le=50, description="Most past messages recalled into one reply.")
    recall_half_life_days: float = Field(
        default=0.0, ge=0, description="Recency weighting of recall: a message this many days old counts "
        "about half; 0 turns weighting off.",
    )
    profile_tokens: int = Field(
        default=500, ge=0, description="Budget (approximate tokens) for the user's profile in a reply's prompt."
    )
    infer_every: int = Field(
        default=6, ge=1, le=100, description="Substantive user messages between two hypothesis jobs "
        "(the first profile comes after 3)."
    )
    web_runs_jobs: bool = Field(
        default=True, description="The web process runs the hypothesis jobs it enqueues; false leaves them to "
        "`hyperalign worker` processes (any number, on the same database).",
    )
    import_limit_mb: int = Field(
        default=1024, ge=1, le=65536, description="The largest file a person may import (an export's "
        "conversations.json inside its ZIP counts at its unpacked size), in MB.",
    )
    instance: str = Field(
        default="", max_length=64, pattern=r"^[0-9A-Za-z._-]*$",
        description="A name for this process (a replica's port, say), shown by `/api/health`, so an operator "
        "behind a proxy can tell which replica answered. Empty shows none.",
    )
    safety_spec: Path | None = Field(
        default=None, description="The safety specification (YAML); empty means the bundled "
        "assistant/safety/spec.yaml. Check a file with `hyperalign spec check PATH`.",
    )
    safety_timeout: float = Field(
        default=20.0, gt=0, description="Seconds the safety deliberation may take (re-ask included) before the "
        "reply is written under the documented fallback.",
    )
    show_deliberation: bool = Field(
        default=True, description="Show users the Deliberation step (decision, rules, rationale) above each "
        "reply; the decision is recorded either way.",
    )
    reasoning_opened: bool = Field(
        default=False, description="The models' chat template opens the thinking block itself (DeepSeek-R1 served "
        "without a reasoning parser): their answers start inside it and hold only its closing tag.",
    )
    show_reasoning: bool = Field(
        default=False, description="Show a reasoning model's thinking, collapsed, in a Reasoning step above the "
        "reply. It is never part of the reply, the stored message or what the profile learns from.",
    )
    allowed_origins: str = Field(
        default="", description="Other origins (scheme://host[:port], comma-separated) allowed to use a signed-in "
        "session; the app's own origin always is. Behind a proxy, list the public origin if the proxy rewrites Host.",
    )
    signin_failures_per_account: int = Field(
        default=10, ge=1, description="Wrong passwords for one account within the limit window before its sign-in "
        "is refused (429) until the window passes.",
    )
    signin_failures_per_client: int = Field(
        default=50, ge=1, description="Failed sign-ins from one client address within the limit window before it is "
        "refused (429).",
    )
    signups_per_client: int = Field(
        default=10, ge=1, description="Accounts one client address may create within the limit window.",
    )
    limit_window: int = Field(
        default=900, ge=1, description="Seconds over which the sign-in and sign-up limits count.",
    )
    index_cache_users: int = Field(default=256, ge=1, description="Users whose vector index is kept in memory.")
    log_level: str = Field(default="INFO", description="Python logging level.")

    @field_validator("database_url", "openai_api_key", "openai_base_url", "auth_secret", "safety_spec",
                     "safety_model", "hypotheses_model", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return normalise_database_url(value)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        return ",".join(parse_origins(value))

    @field_validator("prices")
    @classmethod
    def _readable_prices(cls, value: str) -> str:
        from assistant.usage import parse_prices  # the one parser, which the Usage page uses

        parse_prices(value)  # its ValueError says what is wrong, as the settings error
        return value

    @field_validator("chat_context_tokens", "safety_context_tokens", "hypotheses_context_tokens")
    @classmethod
    def _usable_window(cls, value: int) -> int:
        if 0 < value < MIN_CONTEXT:
            raise ValueError(f"must be 0 (the default) or at least {MIN_CONTEXT:,} tokens")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @property
    def offline(self) -> bool:
        """No model configured: replies come from the built-in offline model."""
        return not (self.openai_api_key or self.openai_base_url)

    def model_for(self, purpose: str) -> str:
        """The model of a purpose (chat, safety, hypotheses). An unset one is the chat model on a server
        of the person's own, which serves the models they pulled and seldom one named after OpenAI's."""
        chosen = {"chat": self.chat_model, "safety": self.safety_model, "hypotheses": self.hypotheses_model}[purpose]
        if chosen:
            return chosen
        return self.chat_model if self.openai_base_url else DEFAULT_OPENAI_MODEL

    def context_for(self, purpose: str) -> int:
        """A purpose's context window in tokens: as set, else the chat model's when it is that model, else
        128,000 for OpenAI's models and 4,096 (Ollama's default window) for any other."""
        chosen = {"chat": self.chat_context_tokens, "safety": self.safety_context_tokens,
                  "hypotheses": self.hypotheses_context_tokens}[purpose]
        if chosen:
            return chosen
        if purpose != "chat" and self.model_for(purpose) == self.chat_model and self.chat_context_tokens:
            return self.chat_context_tokens
        # OpenAI's models keep their window behind any endpoint (OpenAI, Azure, a router); any other
        # model gets what its server gives it, which for Ollama is 4,096 unless raised.
        return OPENAI_CONTEXT if is_openai_model(self.model_for(purpose)) else LOCAL_CONTEXT

    @property
    def origins(self) -> tuple[str, ...]:
        return tuple(o for o in self.allowed_origins.split(",") if o)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hyperalign.db'}"


def parse_origins(value: str) -> list[str]:
    """`https://chat.example.com, http://localhost:8000` -> each origin as browsers send it (no path)."""
    origins = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        scheme, sep, host = item.rstrip("/").partition("://")
        if scheme.lower() not in {"http", "https"} or not sep or not host or "/" in host or "*" in host:
            raise ValueError(f"{item!r} is not an origin like https://chat.example.com (no path, no wildcard)")
        origins.append(f"{scheme.lower()}://{host.lower()}")
    return origins


def normalise_database_url(url: str) -> str:
    """Map the usual spellings to the drivers we ship (psycopg 3), and refuse anything else."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    raise ValueError("must start with sqlite:// or postgresql:// (other databases are not supported)")


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings once; raise ConfigError naming each faulty variable.

    `overrides` are raw values, validated like the environment's (hence Any, as in pydantic's own __init__).
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


# Settings whose value may hold a secret (a key, or a password inside a URL): never echoed in a message.
SECRET_FIELDS = frozenset({"openai_api_key", "auth_secret", "database_url", "openai_base_url"})


def _explain(exc: ValidationError) -> str:
    lines = ["Invalid configuration:"]
    for error in exc.errors():
        field = _field_named(str(error["loc"][0])) if error["loc"] else "?"
        got = "(value not shown: it may hold a secret)" if field in SECRET_FIELDS else f"(got {error.get('input')!r})"
        lines.append(f"  {env_name(field)}: {error['msg']} {got}")
    return "\n".join(lines)


def _field_named(name: str) -> str:
    """The field an error's location names: pydantic names a field read from an alias by the alias."""
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if name == field or (isinstance(alias, AliasChoices) and name in alias.choices):
            return field
    return name


def env_name(field: str) -> str:
    """The environment variable that sets a field."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"HYPERALIGN_{field.upper()}"


def setting_names() -> list[str]:
    """Every environment variable the app reads, in declaration order."""
    return [env_name(name) for name in Settings.model_fields]


def load_or_create_auth_secret(settings: Settings) -> str:
    """The JWT secret: the configured one, else one generated once and kept in the data dir.

    Keeping it means sign-ins survive restarts; a new secret would sign everybody out.
    """
    if settings.auth_secret:
        return settings.auth_secret
    from memory.files import private_dir, tighten

    path = private_dir(settings.data_dir) / "auth_secret"
    if path.exists():
        tighten(path)  # written by an install from before secrets were kept owner-only
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it a moment ago: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret
