"""`hyperalign worker`: run hypothesis jobs and embedding catch-up in a process of their own."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from assistant.cli.base import CommandError
from assistant.config import Settings


def add_commands(commands) -> None:
    worker_cmd = commands.add_parser("worker", help="run hypothesis jobs and embedding catch-up (beside serve)")
    worker_cmd.add_argument("--once", action="store_true", help="one round (what is claimable now), then exit")
    worker_cmd.add_argument("--poll", type=float, default=2.0, help="seconds between rounds when idle (default 2)")
    worker_cmd.add_argument("--concurrency", type=int, default=2, help="jobs run at once (default 2)")
    worker_cmd.set_defaults(run=worker)


def worker(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.wiring import build_app
    from assistant.worker import Worker

    if args.poll <= 0 or args.concurrency < 1:
        raise CommandError("--poll must be more than 0 seconds and --concurrency at least 1")
    if settings.offline:
        raise CommandError("a worker runs hypothesis jobs, which need a language model: set OPENAI_API_KEY or "
                           "OPENAI_BASE_URL as for serve")
    # The web process logs through Chainlit's set-up; without one of its own a worker's failed jobs and
    # its migrations would leave no trace. The same format, so a proxy host's logs read alike.
    logging.basicConfig(level=settings.log_level, format="%(asctime)s - %(levelname)s - %(name)s - %(message)s")
    app = build_app(settings)

    async def run() -> None:
        await asyncio.to_thread(app.embedder.load)
        crew = Worker(engine=app.engine, jobs=app.jobs, embedder=app.embedder, concurrency=args.concurrency)
        try:
            if args.once:
                done = await crew.round()
                print(f"worker: {done.jobs} jobs run, {done.taken} taken by others, {done.embedded} messages embedded",
                      flush=True)
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):  # finish the round, then exit
                loop.add_signal_handler(sig, stop.set)
            print(f"hyperalign worker: running jobs ({args.concurrency} at once) and embedding catch-up", flush=True)
            await crew.run(poll_s=args.poll, stop=stop)
        finally:
            await app.aclose()

    asyncio.run(run())
    return 0
