"""Drives one batch through its pure core: the engine's only `match` on what comes next.

A core (`StreamBatchProcess` for Kinesis, DynamoDB Streams and Kafka, `SqsBatchProcess` for SQS)
decides; the driver invokes through the source's port, feeds the result back, and carries out each
decision with the port's calls. A source hands over only what is particular to it: how to invoke
these records, how to wait (Kafka pauses its partition, SQS keeps the messages invisible), how to
send failures, checkpoint, acknowledge and give back.

The first-attempt fast path (Kafka, and streams): a batch whose core would surely start by invoking
every record (`whole_batch_first`) is invoked before the core is built, and the core is built only
if that attempt was not a plain success — most batches then never cost per-record objects.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

from poller.core.backoff import Backoff
from poller.core.batch_result import BatchResult, BatchSucceeded
from poller.core.clock import Clock
from poller.core.outcome import InvokeOutcome
from poller.core.sqs_batch import Acknowledge, Finished, GiveBack, InvokeAll, SqsDecision
from poller.core.stream_retry import Checkpoint, Decision, Done, Invoke, SendToDestination
from poller.dispatch.invoker import Attempt

AnyDecision = Decision | SqsDecision


class BatchProcess(Protocol):
    """A pure core driving one batch (see `poller.core.stream_retry`, `poller.core.sqs_batch`)."""

    def next_decision(self, now_epoch: float) -> AnyDecision: ...

    def record_result(self, outcome: InvokeOutcome, result: BatchResult | None = None) -> BatchResult: ...

    def cannot_wait(self) -> bool:
        """A `Backoff` could not be waited out: True if the core goes on (e.g. to give the batch
        back), False if the batch is abandoned unfinished."""
        ...


class BatchPort(Protocol):
    """What a source does for the driver, for one batch."""

    def may_invoke(self) -> bool:
        """False once the batch must be abandoned before another invoke (stopping, partition lost)."""
        ...

    async def invoke(self, decision: Invoke | InvokeAll) -> Attempt: ...

    async def wait(self, seconds: float, backoff: Backoff) -> bool:
        """Wait `seconds` (jitter drawn); False if it could not (stopping, or no time left)."""
        ...

    async def send_to_destination(self, decision: SendToDestination) -> bool:
        """False when stopping cut a blocked delivery short: the batch is abandoned unfinished."""
        ...

    async def checkpoint(self, after_sequence_number: str) -> None: ...

    async def acknowledge(self, decision: Acknowledge) -> None: ...

    async def give_back(self, decision: GiveBack) -> None: ...


class ResultSink(Protocol):
    """Where each attempt's success or failure is reported (the status model's LastProcessingResult)."""

    def record_result(self, ok: bool) -> None: ...


class Driver:
    def __init__(
        self,
        *,
        clock: Clock,
        status: ResultSink,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.clock = clock
        self.status = status
        self.uniform = uniform

    async def drive(self, process: BatchProcess, port: BatchPort) -> bool:
        """Drive `process` to its end; False if the batch was abandoned unfinished."""
        while True:
            match process.next_decision(self.clock.wall()):
                case Invoke() | InvokeAll() as invoke:
                    if not port.may_invoke():
                        return False
                    attempt = await port.invoke(invoke)
                    used = process.record_result(attempt.outcome, attempt.result)
                    self.status.record_result(isinstance(used, BatchSucceeded))
                case Backoff(seconds=seconds, jitter=(low, high)) as backoff:
                    if not await port.wait(seconds * self.uniform(low, high), backoff) and not (
                        process.cannot_wait()
                    ):
                        return False
                case SendToDestination() as discard:
                    if not await port.send_to_destination(discard):
                        return False
                case Checkpoint(after_sequence_number=after):
                    await port.checkpoint(after)
                case Acknowledge() as done:
                    await port.acknowledge(done)
                case GiveBack() as back:
                    await port.give_back(back)
                case Done() | Finished():
                    return True

    async def drive_fast_first(
        self,
        port: BatchPort,
        *,
        end_sequence_number: str,
        build: Callable[[], BatchProcess],
        judged_at: float | None = None,
    ) -> bool:
        """The first-attempt fast path (module docstring): invoke every record once; on a plain
        success checkpoint through `end_sequence_number`, else build the core, hand it that attempt
        and drive it on. The caller has checked `whole_batch_first` at `judged_at` (default: now).

        The core's first decision is taken at that same instant, not after the invoke: judged after
        a long invoke, a record may have expired meanwhile and the core would not start with the
        attempt already made."""
        if not port.may_invoke():
            return False
        judged_at = self.clock.wall() if judged_at is None else judged_at
        first = await port.invoke(InvokeAll(1))
        if isinstance(first.result, BatchSucceeded):
            self.status.record_result(True)
            await port.checkpoint(end_sequence_number)
            return True
        process = build()
        decision = process.next_decision(judged_at)
        if not (isinstance(decision, Invoke) and decision.attempt == 1):
            raise RuntimeError(f"the first attempt was not the core's: {decision!r}")
        used = process.record_result(first.outcome, first.result)
        self.status.record_result(isinstance(used, BatchSucceeded))
        return await self.drive(process, port)
