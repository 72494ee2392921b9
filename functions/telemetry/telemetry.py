"""The demo's telemetry function: an ordinary Lambda handler for a Kinesis mapping, as it would be
deployed to AWS. poller runs it in execution environments (`Functions:` in mappings/telemetry.yaml):
AWS's own runtime client imports this file from its CodeUri once per environment and calls `handler`
for each batch.

It checks every reading of the batch and raises on a corrupt one, which fails the whole batch (no
partial batch response here). The mapping's BisectBatchOnFunctionError then halves the batch until
the corrupt reading is alone; after MaximumRetryAttempts it is described in a failure record sent to
the on-failure destination, and the shard moves on.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    hottest: dict[str, float] = {}
    for record in event["Records"]:
        reading = json.loads(base64.b64decode(record["kinesis"]["data"]))
        if reading.get("poison"):
            raise ValueError(f"reading {reading.get('reading')} from {reading.get('deviceId')} is corrupt")
        device = str(reading["deviceId"])
        hottest[device] = max(hottest.get(device, float("-inf")), float(reading["celsius"]))
    return {"hottest": hottest}
