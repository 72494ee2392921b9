"""Summarise a py-spy collapsed-stack profile (`bench/run --profile` writes one per benchmark).

    python -m bench.profile /tmp/poller-bench-XXXX/kafka/profile.txt [--only TEXT] [--exclude TEXT] [--top 25]

Prints the share of samples per function, by self time and inclusive time, over the stacks that
contain SUBSTRING (e.g. `poller/` for the engine's side only, `raw_` for the raw client's).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise(path: Path, only: str | None, top: int, exclude: tuple[str, ...] = ()) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        stack = match["stack"]
        if (only is not None and only not in stack) or any(text in stack for text in exclude):
            continue
        count = int(match["count"])
        frames = [_short(f) for f in stack.split(";")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    out = [f"{total} samples" + (f" in stacks containing {only!r}" if only else "")]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        out.append(f"-- top {top} by {title} --")
        for frame, count in counter.most_common(top):
            out.append(f"{100 * count / max(total, 1):5.1f}%  {frame}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--only", help="keep only stacks containing this text")
    parser.add_argument("--exclude", action="append", default=[], help="drop stacks containing this text")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.profile, args.only, args.top, tuple(args.exclude)))


if __name__ == "__main__":
    main()
