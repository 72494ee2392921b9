"""The one HTTP listener: /metrics, /healthz, /readyz, /status and the Lambda API (DESIGN §1.6, §1.9)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from poller.observability.status import ServiceStatus


def build_app(
    status: ServiceStatus, registry: CollectorRegistry, extra_routes: Sequence[web.RouteDef] = ()
) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        # Answered on the event loop itself: if this responds, the loop is alive. It never looks
        # at AWS, Kafka or the target, so an outage there cannot restart every pod at once.
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready = status.ready()
        return web.json_response({"ready": ready, "draining": status.draining}, status=200 if ready else 503)

    async def status_json(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(status.as_json()), content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status_json)
    app.add_routes(extra_routes)
    return app


async def start_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
