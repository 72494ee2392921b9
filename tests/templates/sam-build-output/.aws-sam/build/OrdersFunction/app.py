"""The orders handler of poller's sam-build-output fixture."""

import os


def handler(event, context):
    return {"batchItemFailures": [], "stage": os.environ.get("STAGE"), "built": True}
