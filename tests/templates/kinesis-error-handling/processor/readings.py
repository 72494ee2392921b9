"""Validates sensor readings from a Kinesis stream. An invalid reading fails the whole invocation;
the event source mapping then bisects the batch, retries, and finally sends a description of the
reading it gave up on to the on-failure destination."""

import base64
import json
import logging
import os

logger = logging.getLogger()
logger.setLevel(logging.INFO)

REQUIRED = ("sensorId", "metric", "value")


def parse(record):
    reading = json.loads(base64.b64decode(record["kinesis"]["data"]))
    missing = [field for field in REQUIRED if field not in reading]
    if missing:
        raise ValueError(f"reading {record['kinesis']['sequenceNumber']} lacks {', '.join(missing)}")
    return reading


def lambda_handler(event, context):
    stream = os.environ["STREAM_NAME"]
    for record in event["Records"]:
        reading = parse(record)
        logger.info("Stored reading from %s: %s", stream, json.dumps(reading, sort_keys=True))
    return {"processed": len(event["Records"])}
