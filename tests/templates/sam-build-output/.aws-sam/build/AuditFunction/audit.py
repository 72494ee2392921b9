"""The audit handler of poller's sam-build-output fixture."""


def handler(event, context):
    return {"records": len(event["Records"]), "built": True}
