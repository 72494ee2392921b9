"""The one path every formed batch takes (DESIGN §2): invoke the target, classify the outcome, ask
the pure core what comes next, and do it.

- `invoker`: one attempt — invoke, classify, count, log once.
- `driver`: the loop over a pure core's decisions (`StreamBatchProcess`, `SqsBatchProcess`), with a
  source's `BatchPort` doing what is particular to it (acknowledge, checkpoint, give back, pause).
- `failures`: the on-failure destination (or the drop counter), one sender for every source.
- `pause`: the one "sleep unless stopping".
"""
