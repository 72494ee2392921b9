"""On-failure destinations for stream and Kafka mappings, behind one `Destination` protocol."""

from poller.destinations._aws import DestinationClients, destination_config
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
    "DestinationClients",
    "DestinationSpec",
    "FailureDelivery",
    "S3KeyParts",
    "destination_config",
    "open_destination",
    "parse_destination",
]
