"""poller: AWS Lambda's event-source mappings (SQS, Kinesis, DynamoDB Streams, Kafka) as a service."""

__version__ = "0.1.0"

__all__ = ["__version__"]
