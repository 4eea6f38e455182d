"""`hyperalign bench load` end to end: the app it starts, simulated users over the real socket protocol,
the stand-in model, and the storage check, on SQLite and PostgreSQL."""

import socket

from assistant.measure.load import Turn, check_stored, draw, render, run_load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_simulated_users_are_answered_measured_and_every_message_is_stored_once(database_url, tmp_path):
    lines: list[str] = []
    result = run_load(levels=[1, 3], messages=2, latency_ms=50, tokens=8, tokens_per_s=400, url=None,
                      database_url=database_url, port=free_port(), timeout=60, say=lines.append)
    one, three = result["levels"]
    assert (one["users"], one["turns"], three["turns"]) == (1, 2, 6) and one["errors"] == three["errors"] == 0, lines
    assert 0 < three["ttft_p50_s"] <= three["turn_p50_s"] <= three["turn_p95_s"] and three["turns_per_s"] > 0
    assert one["cpu_ms_per_turn"] > 0  # the app's own process, measured
    assert result["storage_checked"] == 2 + 6 and result["storage_problems"] == []
    assert result["model_calls"]["chat"] == 2 + 2 + 6  # the warm-up's two turns too
    assert "turns/s" in render(result) and any("storage: 8 sent messages checked, 0 problems" in ln for ln in lines)
    draw(result, tmp_path / "load.png")
    assert (tmp_path / "load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The check can fail: a message that was never stored is named.
    assert check_stored(database_url, [Turn("nobody", "never-sent")]) == ["never-sent of nobody: stored 0 times"]


def test_two_replicas_behind_nginx_answer_the_crowd_and_lose_nothing(postgres_admin_url, tmp_path):
    from assistant.measure.proxy import NGINX
    from tests.conftest import unavailable
    from tests.deployment import free_run
    from tests.pgserver import create_database, drop_database

    if postgres_admin_url is None or not NGINX.exists():
        unavailable("bench load --replicas needs PostgreSQL and nginx (apt-get install postgresql nginx)")
    url = create_database(postgres_admin_url)
    lines: list[str] = []
    try:
        result = run_load(levels=[4], messages=2, latency_ms=50, tokens=8, tokens_per_s=400, url=None,
                          database_url=url, port=free_run(3), timeout=60, replicas=2, say=lines.append)
    finally:
        drop_database(postgres_admin_url, url)
    (four,) = result["levels"]
    assert four["turns"] == 8 and four["errors"] == 0 and result["replicas"] == 2, lines
    assert result["storage_checked"] == 8 and result["storage_problems"] == []
    assert any("2 replicas" in line for line in lines)
