"""The demo's payment handler: an ordinary Lambda handler for a self-managed Kafka mapping.

It settles every payment of the batch and raises on one it cannot settle, which fails the whole
batch. The mapping's BisectBatchOnFunctionError then halves the batch until the bad payment is
alone; after MaximumRetryAttempts it is written to the `kafka://` on-failure destination, one
message per record, and the partition moves on.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settled = 0
    for records in event["records"].values():
        for record in records:
            payment = json.loads(base64.b64decode(record["value"]))
            if payment.get("poison"):
                raise ValueError(f"payment {payment.get('paymentId')} cannot be settled")
            settled += int(payment["cents"])
    return {"settledCents": settled}
