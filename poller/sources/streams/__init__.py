"""Kinesis and DynamoDB Streams sources: the plain helper both share (DESIGN §2), which reads shards
and checkpoints them, and hands every batch to the one dispatcher (`poller.dispatch.driver`).

Per mapping, a scheduler lists the stream's shards and starts a worker for each shard whose parents
are finished (spec §5.2 resharding). Per shard, one reader calls GetRecords into bounded lane
queues and pauses when they are full; ParallelizationFactor lanes (spec §9.2) each run one batch at
a time, a key always in the same lane, so every key stays in order. Records are checkpointed only
once every record before them is finished too, so a crash redelivers at most the batches in flight.

- `source`: `StreamSource`, the mapping behind the `Source` seam: builds the rest, runs, stops.
- `context`: what every part of one mapping shares (settings, collaborators, shard list, ages).
- `scheduler`: shard listing, lineage, start positions, lease acquisition; starts and stops the
  shard workers.
- `shard`: one shard at work: its reader, its lanes and its checkpoint.
- `reader`: the shard reader, with its read-ahead, iterator recovery and filtering.
- `lanes`: the lanes that gather batches, and `LaneBatch`, a batch as the driver's `BatchPort`.
- `windows`: the lane of a mapping with `TumblingWindowInSeconds` (spec §8): batches within one
  window, the state carried between them, the final invocation, the checkpoint held meanwhile.
- `failures`: a discarded batch as the on-failure destination receives it (spec §6.2, §6.3).
- `api`: the small `StreamApi` protocol the two services sit behind, and its value types.
- `kinesis_api`, `dynamodb_api`: the two services' calls, turned into Lambda records.
"""

from poller.sources.streams.api import StreamApi
from poller.sources.streams.dynamodb_api import DynamoDbStreamsApi
from poller.sources.streams.kinesis_api import KinesisApi
from poller.sources.streams.source import StreamSource

__all__ = ["DynamoDbStreamsApi", "KinesisApi", "StreamApi", "StreamSource"]
