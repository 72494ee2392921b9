"""On-failure destinations for stream and Kafka mappings, behind one `Destination` protocol."""

from poller.destinations.base import (
    DeliveryFailed,
    DeliveryRejected,
    Destination,
    FailureDelivery,
    S3KeyParts,
)
from poller.destinations.factory import DestinationSpec, open_destination, parse_destination

__all__ = [
    "DeliveryFailed",
    "DeliveryRejected",
    "Destination",
    "DestinationSpec",
    "FailureDelivery",
    "S3KeyParts",
    "open_destination",
    "parse_destination",
]
