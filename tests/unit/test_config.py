import os
import stat

import pytest

from assistant.config import ConfigError, Registration, load_or_create_auth_secret, load_settings, setting_names


def test_defaults_are_offline_sqlite_in_the_data_dir(tmp_path):
    settings = load_settings()
    assert settings.offline
    assert settings.registration is Registration.OPEN
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'hyperalign.db'}"


def test_own_settings_carry_the_prefix_and_standard_names_stay(monkeypatch):
    monkeypatch.setenv("HYPERALIGN_CHAT_MODEL", "llama3")
    monkeypatch.setenv("HYPERALIGN_REGISTRATION", "closed")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db/app")
    settings = load_settings()
    assert settings.chat_model == "llama3"
    assert settings.registration is Registration.CLOSED
    assert not settings.offline
    assert settings.resolved_database_url == "postgresql+psycopg://u:p@db/app"


def test_an_unset_purpose_model_is_the_chat_model_on_a_server_of_ones_own(monkeypatch):
    """README's Ollama example sets only the chat model: safety and hypotheses must not ask Ollama for gpt-4o-mini."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    on_openai = load_settings()
    assert [on_openai.model_for(p) for p in ("chat", "safety", "hypotheses")] == ["gpt-4o-mini"] * 3
    monkeypatch.setenv("HYPERALIGN_CHAT_MODEL", "gpt-4o")
    assert load_settings().model_for("safety") == "gpt-4o-mini"  # on OpenAI the cheap default stays
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.setenv("HYPERALIGN_CHAT_MODEL", "qwen3:8b")
    monkeypatch.setenv("HYPERALIGN_HYPOTHESES_MODEL", "  ")  # blank counts as unset
    own = load_settings()
    assert [own.model_for(p) for p in ("chat", "safety", "hypotheses")] == ["qwen3:8b"] * 3
    monkeypatch.setenv("HYPERALIGN_SAFETY_MODEL", "llama-guard3")
    assert load_settings().model_for("safety") == "llama-guard3"  # a model set for a purpose is used as set


def test_dotenv_in_the_working_directory_is_read(tmp_path):
    (tmp_path / ".env").write_text("HYPERALIGN_MAX_RETRIES=5\nOPENAI_API_KEY=sk-test\n")
    settings = load_settings()
    assert settings.max_retries == 5 and settings.openai_api_key == "sk-test"


def test_blank_values_count_as_unset(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "  ")
    assert load_settings().offline


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("HYPERALIGN_REQUEST_TIMEOUT", "soon", "HYPERALIGN_REQUEST_TIMEOUT"),
        ("HYPERALIGN_REQUEST_TIMEOUT", "-1", "greater than 0"),
        ("HYPERALIGN_REGISTRATION", "sometimes", "'open' or 'closed'"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL: Value error, must start with sqlite:// or postgresql://"),
        ("HYPERALIGN_LOG_LEVEL", "LOUD", "HYPERALIGN_LOG_LEVEL"),
    ],
)
def test_invalid_values_are_named_with_a_reason(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert name in str(caught.value)


def test_every_setting_has_an_environment_name():
    names = setting_names()
    assert "HYPERALIGN_DATA_DIR" in names and "CHAINLIT_AUTH_SECRET" in names
    assert all(n.startswith("HYPERALIGN_") or n in {
        "DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "CHAINLIT_AUTH_SECRET"} for n in names)


def test_auth_secret_is_generated_once_kept_private_and_reused():
    settings = load_settings()
    first = load_or_create_auth_secret(settings)
    assert len(first) >= 40
    assert load_or_create_auth_secret(load_settings()) == first
    mode = stat.S_IMODE(os.stat(settings.data_dir / "auth_secret").st_mode)
    assert mode == 0o600


def test_configured_auth_secret_wins(monkeypatch):
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "from-the-environment")
    settings = load_settings()
    assert load_or_create_auth_secret(settings) == "from-the-environment"
    assert not (settings.data_dir / "auth_secret").exists()


def test_context_windows_default_by_model_and_refuse_a_window_too_small_to_answer_in(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://my-router.example/v1")
    monkeypatch.setenv("HYPERALIGN_CHAT_MODEL", "gpt-4o")
    assert load_settings().context_for("chat") == 128_000  # OpenAI's model keeps its window behind a router
    monkeypatch.setenv("HYPERALIGN_CHAT_MODEL", "gpt-oss:20b")
    assert load_settings().context_for("safety") == 4_096  # open weights: what the server gives it
    monkeypatch.setenv("HYPERALIGN_CHAT_CONTEXT_TOKENS", "32768")
    assert load_settings().context_for("hypotheses") == 32_768  # the same model as the chat: its window
    monkeypatch.setenv("HYPERALIGN_SAFETY_CONTEXT_TOKENS", "100")
    with pytest.raises(ConfigError, match="HYPERALIGN_SAFETY_CONTEXT_TOKENS"):
        load_settings()
