"""The SQS source: Lambda's SQS poller (spec §3.1, §4, §5.1, §9.1), split by role.

- `source`: `SqsSource`, the facade — lifecycle, the local buffer, the dispatch loop that gathers
  batches and drives each through the pure core (`poller.core.sqs_batch`) with the one dispatcher,
  via `SqsBatchPort` (invoke, throttle wait, delete, give back).
- `receiver`: the receive loops and the manager that scales their number; long polls, records
  built at receive, filtering at receive (unmatched messages deleted at once).
- `visibility`: the visibility keeper — keeps the messages in hand invisible, trusting only what
  SQS confirmed, and gives messages back.
- `calls`: the SQS API calls (describe, delete, change visibility), errors read by code.
"""

from poller.sources.sqs.receiver import MAX_RECEIVERS
from poller.sources.sqs.source import SqsSource

__all__ = ["MAX_RECEIVERS", "SqsSource"]
