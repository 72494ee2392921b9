"""Stock changes from the DynamoDB table's stream: counts them and warns about low stock.

`SEEN` lives at module level, so it is kept from one invocation to the next while the execution
environment stays warm, as in Lambda.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

LOW_STOCK = int(os.environ["LOW_STOCK"])
SEEN: Counter[str] = Counter()


def handler(event: dict[str, Any], context: Any) -> None:
    for record in event["Records"]:
        SEEN[record["eventName"]] += 1
        image = record["dynamodb"].get("NewImage")
        if image is None:
            continue
        sku, stock = image["sku"]["S"], int(image["stock"]["N"])
        if stock <= LOW_STOCK:
            print(f"[{os.environ['STAGE']}] low stock: {sku} has {stock} left")
    print(f"changes seen by this environment: {dict(SEEN)}")
