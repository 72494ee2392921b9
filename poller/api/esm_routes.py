"""The Lambda event-source-mapping API on the one HTTP listener (DESIGN §1.6, §1.9).

Paths, methods and status codes are botocore's `lambda` model (REST-JSON, 2015-03-31); errors
are sent as AWS sends them (`x-amzn-ErrorType` and a JSON body), so boto3, the AWS CLI and
Terraform read them as they read Lambda's.
"""

from __future__ import annotations

import uuid as uuids
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web

from poller.api.esm_errors import ApiError, invalid, server_fault, too_large
from poller.api.esm_service import EsmService
from poller.api.esm_sigv4 import check_access

log = structlog.get_logger("poller.api")

ESM_PATH = "/2015-03-31/event-source-mappings"
TAGS_PATH = "/2017-03-31/tags/{Resource:.+}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(status: int, body: object | None) -> web.Response:
    headers = {"x-amzn-RequestId": str(uuids.uuid4())}
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _error(error: ApiError) -> web.Response:
    reply = _json(error.status, error.body())
    reply.headers["x-amzn-ErrorType"] = error.code
    return reply


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("Could not parse request body into json.") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def esm_routes(service: EsmService, access_key_ids: tuple[str, ...]) -> list[web.RouteDef]:
    """The API's routes, every one behind the access check."""

    def guarded(operation: Callable[[web.Request], Awaitable[web.Response]], name: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                check_access(access_key_ids, request.headers, request.query)
                return await operation(request)
            except ApiError as error:
                log.info("api_refused", path=request.path, method=request.method, code=error.code)
                return _error(error)
            except web.HTTPRequestEntityTooLarge:
                log.info("api_refused", path=request.path, method=request.method, code="TooLarge")
                return _error(too_large(request.client_max_size, name))
            except Exception as exc:  # never a traceback to the client; AWS's 500 shape instead
                log.exception("api_error", path=request.path, method=request.method, error=str(exc)[:300])
                return _error(server_fault())

        return handle

    async def create(request: web.Request) -> web.Response:
        return _json(202, await service.create(await _body(request)))

    async def list_all(request: web.Request) -> web.Response:
        query = request.query
        reply = await service.list_mappings(
            event_source_arn=query.get("EventSourceArn"),
            function_name=query.get("FunctionName"),
            marker=query.get("Marker"),
            max_items=query.get("MaxItems"),
        )
        return _json(200, reply)

    async def get(request: web.Request) -> web.Response:
        return _json(200, await service.get(request.match_info["UUID"]))

    async def update(request: web.Request) -> web.Response:
        return _json(202, await service.update(request.match_info["UUID"], await _body(request)))

    async def delete(request: web.Request) -> web.Response:
        return _json(202, await service.delete(request.match_info["UUID"]))

    async def list_tags(request: web.Request) -> web.Response:
        return _json(200, await service.list_tags(request.match_info["Resource"]))

    async def tag(request: web.Request) -> web.Response:
        await service.tag(request.match_info["Resource"], (await _body(request)).get("Tags"))
        return _json(204, None)

    async def untag(request: web.Request) -> web.Response:
        await service.untag(request.match_info["Resource"], request.query.getall("tagKeys", []))
        return _json(204, None)

    one = ESM_PATH + "/{UUID}"
    return [
        web.post(ESM_PATH, guarded(create, "CreateEventSourceMapping")),
        web.post(ESM_PATH + "/", guarded(create, "CreateEventSourceMapping")),
        web.get(ESM_PATH, guarded(list_all, "ListEventSourceMappings"), allow_head=False),
        web.get(ESM_PATH + "/", guarded(list_all, "ListEventSourceMappings"), allow_head=False),
        web.get(one, guarded(get, "GetEventSourceMapping"), allow_head=False),
        web.put(one, guarded(update, "UpdateEventSourceMapping")),
        web.delete(one, guarded(delete, "DeleteEventSourceMapping")),
        web.get(TAGS_PATH, guarded(list_tags, "ListTags"), allow_head=False),
        web.post(TAGS_PATH, guarded(tag, "TagResource")),
        web.delete(TAGS_PATH, guarded(untag, "UntagResource")),
    ]
