"""The self-managed Kafka source on aiokafka (spec §2, §3.4, §5.3, §9.3; ops anchors §1, §4).

One consumer per mapping joins the mapping's consumer group. The fetcher hands records to one
worker per assigned partition; each worker gathers batches (BatchSize, the 500 ms default window
that opens with the first record, the 6 MB cap) and hands each to the one dispatcher, driven by the
same pure retry machine as the streams (`StreamBatchProcess`, offsets as sequence numbers), so a
partition is processed in order while partitions run concurrently. Offsets are committed in the
background, coalesced to the highest contiguous finished offset per partition, and never past an
unfinished record. On a rebalance, revoked partitions stop taking batches, finish (or, past their
budget, abandon) what is in flight, and commit before the partition is released.

- `source`: `KafkaSource`, the facade — the consumer's lifecycle, subscribe, start and stop.
- `rebalance`: the rebalance listener — partitions assigned and revoked, with the revoke budget.
- `fetcher`: `getmany` into the workers' buffers, flow control (full partitions left out, pausing
  when all are full) and the offset lag.
- `committer`: offset commits of each partition's finished prefix, failed ones counted.
- `partition`: the partition worker — its buffer, gathering batches, and driving each one.
- `batch`: one gathered batch and its `BatchPort`, what the driver's decisions mean for Kafka.
- `failures`: what discarded records become at the on-failure destination (spec §6.4, §6.5).
- `policy`: the mapping's retry policy and how `itemIdentifier`s name a batch's records.
"""

from poller.sources.kafka.policy import RETRIES_WITH_DESTINATION_CAP, kafka_identifier, kafka_retry_policy
from poller.sources.kafka.source import ConsumerFactory, KafkaSource

__all__ = [
    "RETRIES_WITH_DESTINATION_CAP",
    "ConsumerFactory",
    "KafkaSource",
    "kafka_identifier",
    "kafka_retry_policy",
]
