"""The Lambda event-source-mapping API (DESIGN §1.9): requests become the same mapping documents
the YAML loader reads, judged by the one resolver of `poller.config`."""
