"""Hiding the secrets a URL can carry before it is shown in /status or written to a log.

A FunctionName such as `https://user:pass@host/fn?token=abc` is a credential in plain sight. What
is kept is what an operator needs to tell targets apart (scheme, host, port, path, query keys);
what is hidden is what authenticates:

- userinfo (`user:pass@`, or a lone token as user) becomes `***@`;
- every query value becomes `***` (`?token=***&region=***`), keys kept; a part without `=` could
  be a bare token, so it becomes `***` too;
- a fragment (`#access_token=…` in OAuth implicit flows) becomes `#***`.

The text is not parsed into a URL object and rebuilt, so nothing else changes (no normalising,
no percent-decoding), and text that is not a URL comes back as it was.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact_url", "redact_urls"]

MASK = "***"

# scheme://[userinfo@]authority-and-path[?query][#fragment]. The userinfo part is greedy up to the
# last `@` before the path, as urllib splits it, so a password with a raw `@` is hidden whole.
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)"
    r"(?:(?P<userinfo>[^/?#]*)@)?"
    r"(?P<rest>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?"
    r"(?:#(?P<fragment>.*))?",
    re.DOTALL,
)

# A URL inside free text (an error message, a state reason) ends at whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        key, equals, _ = part.partition("=")
        parts.append(f"{key}={MASK}" if equals else (MASK if part else part))
    return "&".join(parts)


def redact_url(url: str) -> str:
    """`url` with its userinfo, query values and fragment masked; anything else unchanged."""
    match = _URL.fullmatch(url)
    if match is None:
        return url
    out = [match["scheme"]]
    if match["userinfo"] is not None:
        out.append(f"{MASK}@")
    out.append(match["rest"])
    if match["query"] is not None:
        out.append("?" + _redact_query(match["query"]))
    if match["fragment"] is not None:
        out.append(f"#{MASK}" if match["fragment"] else "#")
    return "".join(out)


def redact_urls(text: str) -> str:
    """`text` with every URL in it passed through `redact_url` (for messages that quote a URL)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
