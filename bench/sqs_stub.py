"""A minimal, fast, in-memory SQS server speaking the JSON protocol aiobotocore sends.

Just enough of SQS for the benchmarks to measure the engine rather than the server: moto's queue
slows as it deepens (DESIGN §4), this one costs the same at any depth. It keeps standard-queue
semantics that matter to a consumer: long polling (`WaitTimeSeconds`), visibility timeouts with
receipt handles, deletes and visibility changes by batch. Requests are `POST /` with
`X-Amz-Target: AmazonSQS.<Operation>` and an `application/x-amz-json-1.0` body.

Run: `python -m bench.sqs_stub --port 9324`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import itertools
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

ACCOUNT = "123456789012"
REGION = "us-east-1"
JSON = "application/x-amz-json-1.0"
MAX_WAIT_SECONDS = 20


class SqsError(Exception):
    def __init__(self, code: str, message: str, query_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.query_code = query_code or code


def _missing_queue() -> SqsError:
    return SqsError(
        "QueueDoesNotExist",
        "The specified queue does not exist.",
        "AWS.SimpleQueueService.NonExistentQueue",
    )


@dataclass(slots=True)
class Message:
    message_id: str
    body: str
    md5: str
    sent_ms: int
    receipt: str | None = None
    deadline: float = 0.0
    receive_count: int = 0
    first_receive_ms: int | None = None


@dataclass
class Queue:
    name: str
    url: str
    visibility_timeout: int = 30
    visible: deque[Message] = field(default_factory=deque)
    in_flight: dict[str, Message] = field(default_factory=dict)
    """By current receipt handle."""
    expiries: list[tuple[float, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.name}"

    def expire(self, now: float) -> None:
        """Messages whose visibility timeout ran out are visible again (at the front, as SQS tends to)."""
        returned = False
        while self.expiries and self.expiries[0][0] <= now:
            deadline, receipt = heapq.heappop(self.expiries)
            message = self.in_flight.get(receipt)
            if message is not None and message.deadline == deadline:
                del self.in_flight[receipt]
                message.receipt = None
                self.visible.appendleft(message)
                returned = True
        if returned:
            self.arrived.set()

    def hide(self, message: Message, receipt: str, seconds: float, now: float) -> None:
        message.receipt = receipt
        message.deadline = now + seconds
        self.in_flight[receipt] = message
        heapq.heappush(self.expiries, (message.deadline, receipt))

    def next_expiry(self) -> float | None:
        return self.expiries[0][0] if self.expiries else None


class Stub:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.queues: dict[str, Queue] = {}
        self.handles = itertools.count()
        self.calls: dict[str, int] = {}
        """Requests per operation, for `GET /stats` (the idle benchmark counts the engine's polls)."""
        self.ops: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "CreateQueue": self.create_queue,
            "GetQueueUrl": self.get_queue_url,
            "GetQueueAttributes": self.get_queue_attributes,
            "ReceiveMessage": self.receive_message,
            "DeleteMessageBatch": self.delete_message_batch,
            "DeleteMessage": self.delete_message,
            "ChangeMessageVisibilityBatch": self.change_message_visibility_batch,
            "SendMessageBatch": self.send_message_batch,
            "SendMessage": self.send_message,
            "PurgeQueue": self.purge_queue,
        }

    def queue(self, request: dict[str, Any]) -> Queue:
        url = request.get("QueueUrl", "")
        queue = self.queues.get(url.rsplit("/", 1)[-1])
        if queue is None:
            raise _missing_queue()
        return queue

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.calls)

    async def handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        name = target.removeprefix("AmazonSQS.")
        self.calls[name] = self.calls.get(name, 0) + 1
        op = self.ops.get(name)
        try:
            if op is None:
                raise SqsError("InvalidAction", f"The action {target} is not valid for this endpoint.")
            body = await request.read()
            reply = await op(orjson.loads(body) if body else {})
        except SqsError as exc:
            return web.Response(
                status=400,
                body=orjson.dumps({"__type": f"com.amazonaws.sqs#{exc.code}", "message": exc.message}),
                headers={"Content-Type": JSON, "x-amzn-query-error": f"{exc.query_code};Sender"},
            )
        return web.Response(body=orjson.dumps(reply), headers={"Content-Type": JSON})

    # -- queues ----------------------------------------------------------------------------------

    async def create_queue(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["QueueName"]
        queue = self.queues.get(name)
        if queue is None:
            queue = Queue(name, f"{self.base_url}/{ACCOUNT}/{name}")
            self.queues[name] = queue
        attributes = request.get("Attributes", {})
        if "VisibilityTimeout" in attributes:
            queue.visibility_timeout = int(attributes["VisibilityTimeout"])
        return {"QueueUrl": queue.url}

    async def get_queue_url(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queues.get(request.get("QueueName", ""))
        if queue is None:
            raise _missing_queue()
        return {"QueueUrl": queue.url}

    async def get_queue_attributes(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(request)
        queue.expire(time.monotonic())
        return {
            "Attributes": {
                "QueueArn": queue.arn,
                "VisibilityTimeout": str(queue.visibility_timeout),
                "ApproximateNumberOfMessages": str(len(queue.visible)),
                "ApproximateNumberOfMessagesNotVisible": str(len(queue.in_flight)),
            }
        }

    async def purge_queue(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(request)
        queue.visible.clear()
        queue.in_flight.clear()
        queue.expiries.clear()
        return {}

    # -- messages --------------------------------------------------------------------------------

    def _enqueue(self, queue: Queue, body: str) -> Message:
        message = Message(
            message_id=str(uuid.uuid4()),
            body=body,
            md5=hashlib.md5(body.encode()).hexdigest(),  # SQS's checksum, not security
            sent_ms=int(time.time() * 1000),
        )
        queue.visible.append(message)
        return message

    async def send_message(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(request)
        message = self._enqueue(queue, request["MessageBody"])
        queue.arrived.set()
        return {"MessageId": message.message_id, "MD5OfMessageBody": message.md5}

    async def send_message_batch(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(request)
        successful = []
        for entry in request.get("Entries", []):
            message = self._enqueue(queue, entry["MessageBody"])
            successful.append(
                {"Id": entry["Id"], "MessageId": message.message_id, "MD5OfMessageBody": message.md5}
            )
        queue.arrived.set()
        return {"Successful": successful, "Failed": []}

    def _take(self, queue: Queue, count: int, visibility: float) -> list[dict[str, Any]]:
        now = time.monotonic()
        queue.expire(now)
        out = []
        now_ms = int(time.time() * 1000)
        while queue.visible and len(out) < count:
            message = queue.visible.popleft()
            receipt = f"{message.message_id}#{next(self.handles)}"
            queue.hide(message, receipt, visibility, now)
            message.receive_count += 1
            if message.first_receive_ms is None:
                message.first_receive_ms = now_ms
            out.append(
                {
                    "MessageId": message.message_id,
                    "ReceiptHandle": receipt,
                    "MD5OfBody": message.md5,
                    "Body": message.body,
                    "Attributes": {
                        "SenderId": ACCOUNT,
                        "SentTimestamp": str(message.sent_ms),
                        "ApproximateReceiveCount": str(message.receive_count),
                        "ApproximateFirstReceiveTimestamp": str(message.first_receive_ms),
                    },
                }
            )
        return out

    async def receive_message(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(request)
        count = max(1, min(10, int(request.get("MaxNumberOfMessages", 1))))
        visibility = float(request.get("VisibilityTimeout", queue.visibility_timeout))
        wait = min(MAX_WAIT_SECONDS, float(request.get("WaitTimeSeconds", 0)))
        end = time.monotonic() + wait
        while True:
            messages = self._take(queue, count, visibility)
            now = time.monotonic()
            if messages or now >= end:
                return {"Messages": messages} if messages else {}
            # Sleep until a send, or the next visibility expiry, or the end of the long poll.
            until = end
            expiry = queue.next_expiry()
            if expiry is not None:
                until = min(until, expiry)
            queue.arrived.clear()
            try:
                async with asyncio.timeout(max(until - now, 0.0)):
                    await queue.arrived.wait()
            except TimeoutError:
                pass

    async def delete_message(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(request)
        queue.in_flight.pop(request["ReceiptHandle"], None)
        return {}

    async def delete_message_batch(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(request)
        successful = []
        for entry in request.get("Entries", []):
            # A stale receipt handle deletes nothing and still succeeds, as SQS answers.
            queue.in_flight.pop(entry["ReceiptHandle"], None)
            successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": []}

    async def change_message_visibility_batch(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(request)
        now = time.monotonic()
        successful, failed = [], []
        for entry in request.get("Entries", []):
            message = queue.in_flight.get(entry["ReceiptHandle"])
            if message is None:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": "ReceiptHandleIsInvalid",
                        "Message": "The receipt handle is not in flight.",
                    }
                )
                continue
            seconds = int(entry.get("VisibilityTimeout", 0))
            if seconds <= 0:
                del queue.in_flight[entry["ReceiptHandle"]]
                message.receipt = None
                queue.visible.appendleft(message)
                queue.arrived.set()
            else:
                queue.hide(message, entry["ReceiptHandle"], seconds, now)
            successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}


def build_app(base_url: str) -> web.Application:
    stub = Stub(base_url)
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_get("/stats", stub.stats)
    app.router.add_post("/", stub.handle)
    app.router.add_post("/{tail:.*}", stub.handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9324)
    args = parser.parse_args()
    web.run_app(
        build_app(f"http://{args.host}:{args.port}"),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
