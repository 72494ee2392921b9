"""Orders from the SQS queue, one order per message.

An order that cannot be taken fails alone: its message id goes in `batchItemFailures`
(FunctionResponseTypes: ReportBatchItemFailures), so only it is received again, and after
maxReceiveCount receives the queue's redrive policy moves it to the dead-letter queue.
"""

from __future__ import annotations

import json
import os
from typing import Any

STAGE = os.environ["STAGE"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures: list[dict[str, str]] = []
    for record in event["Records"]:
        try:
            order = json.loads(record["body"])
            if order["quantity"] <= 0:
                raise ValueError(f"quantity {order['quantity']} is not an order")
        except (ValueError, KeyError, TypeError) as exc:
            print(f"[{STAGE}] order message {record['messageId']} rejected: {exc}")
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        print(f"[{STAGE}] order {order['orderId']}: {order['quantity']} x {order['sku']}")
    return {"batchItemFailures": failures}
