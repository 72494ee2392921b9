"""The demo's order handler: an ordinary Lambda handler for an SQS mapping.

It reports poison messages through `batchItemFailures` (ReportBatchItemFailures), so only they
are retried; after the queue's maxReceiveCount they land in its dead-letter queue.
"""

from __future__ import annotations

import json
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for record in event["Records"]:
        try:
            order = json.loads(record["body"])
            if order.get("poison"):
                raise ValueError(f"order {order.get('orderId')} cannot be processed")
        except ValueError:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
