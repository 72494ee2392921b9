"""Processes a batch of orders from SQS and returns a partial batch response: only the messages
listed in batchItemFailures go back to the queue to be retried."""

import json
import logging
import os

logger = logging.getLogger()
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))


class InvalidOrder(Exception):
    pass


def process_order(body):
    order = json.loads(body)
    if order.get("quantity", 0) <= 0:
        raise InvalidOrder(f"order {order.get('orderId')} has no quantity")
    logger.info("Processed order %s: %s x %s", order["orderId"], order["quantity"], order["sku"])


def lambda_handler(event, context):
    batch_item_failures = []
    for record in event["Records"]:
        try:
            process_order(record["body"])
        except (InvalidOrder, ValueError, KeyError) as error:
            logger.warning("Could not process message %s: %s", record["messageId"], error)
            batch_item_failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": batch_item_failures}
