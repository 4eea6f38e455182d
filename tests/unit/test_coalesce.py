"""Streamed text goes to the browser in bursts: the same text in the same order, far fewer emits, and
nothing held longer than the interval, even when the model stalls."""

import asyncio

import pytest

from assistant.ui.coalesce import Coalesced

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_a_fast_stream_arrives_whole_in_order_in_few_bursts():
    sent: list[str] = []

    async def send(text: str) -> None:
        await asyncio.sleep(0.001)  # an emit takes a moment; later pieces must still not overtake it
        sent.append(text)

    stream = Coalesced(send, interval=0.05)
    tokens = [f"w{i} " for i in range(200)]
    for token in tokens:  # 200 tokens a second
        await stream(token)
        await asyncio.sleep(0.005)
    await stream.close()
    assert "".join(sent) == "".join(tokens)
    assert sent[0] == "w0 "  # the first piece goes out at once
    assert 10 <= len(sent) <= 40, len(sent)  # about one burst per 50 ms of a one-second stream, not 200


async def test_a_held_piece_goes_out_within_the_interval_when_the_model_stalls():
    sent: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()

    async def send(text: str) -> None:
        sent.append((loop.time(), text))

    stream = Coalesced(send, interval=0.05)
    await stream("first ")
    await stream("held ")  # within the interval: held
    assert [t for _, t in sent] == ["first "]
    held_at = loop.time()
    await asyncio.sleep(0.3)  # the model stalls; the held piece must not wait for it
    assert [t for _, t in sent] == ["first ", "held "]
    assert sent[1][0] - held_at < 0.1
    await stream.close()
    assert stream.emits == 2


async def test_closing_sends_what_is_held_and_an_empty_piece_sends_nothing():
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    stream = Coalesced(send, interval=10)
    await stream("")
    await stream("a")
    await stream("b")
    await stream("c")
    await stream.close()
    assert sent == ["a", "bc"]
