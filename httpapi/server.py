"""The REST API listening on one address: what ``ds serve`` starts and stops.

The launcher (the CLI) owns signals and the other services of the daemon; this owns the
aiohttp runner, its timeouts, and a shutdown that lets requests in flight finish.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable

from aiohttp import web

from datastore import Conflict, InvalidRequest, Store

from .app import AccessLog, create_app
from .metrics import METRICS
from .state import Settings

LINGER = 10.0  # aiohttp's default lingering time, capped at the body timeout
SHUTDOWN_GRACE = 30.0  # seconds in-flight requests get to finish on stop


class Server:
    def __init__(self, store: Store, settings: Settings, host: str, port: int) -> None:
        self.app = create_app(store, settings)
        self.host, self.port = host, port
        self.runner = web.AppRunner(
            self.app,
            access_log=logging.getLogger("ds.access"),
            access_log_class=AccessLog,
            handle_signals=False,
            keepalive_timeout=settings.idle_timeout,
            # after an answer to a request whose body was not read to the end, aiohttp
            # reads and drops the rest for this long; a stalled client would hold it
            lingering_time=min(LINGER, settings.body_timeout),
        )
        self.site: web.TCPSite | None = None

    def add_metrics(self, source: Callable[[], str]) -> None:
        """Append ``source()`` (Prometheus text) to every ``/metrics`` answer."""
        self.app[METRICS].sources.append(source)

    async def start(self) -> int:
        """Listen; returns the port bound (``port`` 0 picks a free one)."""
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, self.host, self.port, backlog=1024)
        try:
            await self.site.start()
        except OSError as exc:  # port taken, address not local: say so in one line
            kind = Conflict if exc.errno == errno.EADDRINUSE else InvalidRequest
            raise kind(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        return self.runner.addresses[0][1] if self.runner.addresses else self.port

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop listening, give requests in flight ``grace`` seconds, then close.

        aiohttp's cleanup marks every connection closing, after which it drops the bytes
        still arriving on them, so an upload caught mid-body would hang until the client
        gives up: hence the wait for in-flight requests first.
        """
        if self.site is not None:
            await self.site.stop()
            metrics = self.app[METRICS]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            while metrics.in_flight > 0 and loop.time() < deadline:
                await asyncio.sleep(0.05)
        await self.runner.cleanup()
