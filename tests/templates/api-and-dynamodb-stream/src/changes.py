"""Reads the notes table's stream and logs each change with Powertools' structured logger."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source

logger = Logger()


@logger.inject_lambda_context
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event, context):
    for record in event.records:
        logger.info(
            "Note changed",
            event_name=record.event_name.name,
            keys=record.dynamodb.keys,
            new_image=record.dynamodb.new_image,
        )
