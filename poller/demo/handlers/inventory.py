"""The demo's inventory handler: an ordinary Lambda handler for a DynamoDB Streams mapping.

It applies the stock changes in stream order and, at the first change it cannot apply, reports that
record's sequence number in `batchItemFailures` (ReportBatchItemFailures). Lambda checkpoints the
records before it and retries from it; after MaximumRetryAttempts the failed records are described
in a failure record sent to the on-failure destination.
"""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    for record in event["Records"]:
        change = record["dynamodb"]
        image = change.get("NewImage") or change.get("OldImage") or {}
        if image.get("poison", {}).get("BOOL"):
            # A stream keeps order: report the first failure, the records after it are retried anyway.
            return {"batchItemFailures": [{"itemIdentifier": change["SequenceNumber"]}]}
        int(image.get("stock", {}).get("N", "0"))  # a real handler would update a warehouse here
    return {"batchItemFailures": []}
