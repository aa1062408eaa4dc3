"""``/metrics`` (Prometheus text format) and ``/healthz``.

Requests are counted by route *template* (``/v1/datasets/{name}/files``), method and
status, so the metrics never name a dataset, a file or a user.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from datastore import Histogram, Store

from . import routes as r
from .state import BYTES_IN, STORE, blocking

log = logging.getLogger("ds.api")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
GAUGE_TTL = 10.0


class Metrics:
    """In-process counters; one instance per app. ``sources`` add text from elsewhere
    (the mount's per-operation latency, when ``ds serve`` runs one)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.latency = Histogram(
            "ds_http_request_duration_seconds",
            "Request latency by route template.",
            "route",
            BUCKETS,
        )
        self.sources: list[Callable[[], str]] = []
        self.bytes_in = 0
        self.bytes_out = 0
        self.in_flight = 0
        self._gauges: tuple[float, int, int] | None = None
        self._lock = threading.Lock()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[(route, method, status)] += 1
        self.latency.observe(route, seconds)

    def store_gauges(self, st: Store) -> tuple[int, int]:
        """Datasets and objects, recounted at most every GAUGE_TTL seconds."""
        with self._lock:
            now = time.monotonic()
            if self._gauges is None or now - self._gauges[0] > GAUGE_TTL:
                objects = st.object_count()
                self._gauges = (now, len(st.list_datasets()), objects)
            return self._gauges[1], self._gauges[2]

    def render(self, datasets: int, objects: int) -> str:
        out = [
            "# HELP ds_http_requests_total HTTP requests by route template, method and status.",
            "# TYPE ds_http_requests_total counter",
        ]
        for (route, method, status), n in sorted(self.requests.items()):
            out.append(
                f'ds_http_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}'
            )
        out += self.latency.render()
        out += [
            "# HELP ds_http_request_bytes_total Request body bytes received.",
            "# TYPE ds_http_request_bytes_total counter",
            f"ds_http_request_bytes_total {self.bytes_in}",
            "# HELP ds_http_response_bytes_total Response body bytes sent.",
            "# TYPE ds_http_response_bytes_total counter",
            f"ds_http_response_bytes_total {self.bytes_out}",
            "# HELP ds_http_requests_in_flight Requests being served.",
            "# TYPE ds_http_requests_in_flight gauge",
            f"ds_http_requests_in_flight {self.in_flight}",
            "# HELP ds_datasets Datasets in the store.",
            "# TYPE ds_datasets gauge",
            f"ds_datasets {datasets}",
            "# HELP ds_objects Objects in the store.",
            "# TYPE ds_objects gauge",
            f"ds_objects {objects}",
        ]
        return "\n".join(out) + "\n" + "".join(self._from_sources())

    def _from_sources(self) -> list[str]:
        """Each source's text; one that fails is left out (a metrics page never fails)."""
        texts = []
        for source in self.sources:
            try:
                text = source()
            except Exception:
                log.exception("a metrics source failed")
                continue
            texts.append(text if not text or text.endswith("\n") else text + "\n")
        return texts


METRICS = web.AppKey("metrics", Metrics)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    start = time.perf_counter()
    metrics.in_flight += 1
    status = 500
    resp: web.StreamResponse | None = None
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.in_flight -= 1
        info = request.match_info
        route = info.route.resource.canonical if info.route.resource is not None else "unmatched"
        metrics.observe(route, request.method, status, time.perf_counter() - start)
        metrics.bytes_in += request.get(BYTES_IN, request.content_length or 0)
        if resp is not None:
            sent = resp.body_length if resp.prepared else 0
            if not sent and isinstance(resp, web.Response) and resp.body is not None:
                sent = len(resp.body) if isinstance(resp.body, bytes | bytearray) else 0
            metrics.bytes_out += sent


async def metrics_handler(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    datasets, objects = await blocking(request, metrics.store_gauges, request.app[STORE])
    return web.Response(
        text=metrics.render(datasets, objects),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


ROUTES = [
    r.Route(
        "GET",
        "/healthz",
        healthz,
        "Liveness (no token needed)",
        "public",
        "service",
        responses={200: r.ok("Alive", r.ref("Health"))},
    ),
    r.Route(
        "GET",
        "/metrics",
        metrics_handler,
        "Prometheus metrics (no token needed; names no dataset or user)",
        "public",
        "service",
        responses={200: ("Prometheus text format", {"text/plain": {"type": "string"}})},
    ),
]


def add_routes(app: web.Application) -> None:
    r.add(app, ROUTES)
