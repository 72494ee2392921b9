"""POST /notes: stores the request's JSON body as a note with a new id."""

import json
import os
import uuid

import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def lambda_handler(event, context):
    note = json.loads(event.get("body") or "{}")
    note["id"] = str(uuid.uuid4())
    table.put_item(Item=note)
    return {"statusCode": 201, "headers": {"Content-Type": "application/json"}, "body": json.dumps(note)}
