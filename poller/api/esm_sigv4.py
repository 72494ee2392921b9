"""Who signed a request (DESIGN §1.9): the access key id of a SigV4 signature, nothing more.

poller holds no secret keys, so it cannot verify a signature; what it can do is serve only the
access key ids an operator allows (`api.access_key_ids`), refusing others as AWS does.
"""

from __future__ import annotations

from collections.abc import Mapping

from poller.api.esm_errors import ApiError

_SCHEME = "AWS4-HMAC-SHA256"


def access_key_id(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The access key id of the `Authorization` header's (or a presigned URL's) credential."""
    authorization = headers.get("Authorization", "")
    credential: str | None = None
    if authorization.startswith(_SCHEME):
        for part in authorization[len(_SCHEME) :].split(","):
            key, _, value = part.strip().partition("=")
            if key == "Credential":
                credential = value
    else:
        credential = query.get("X-Amz-Credential")
    if not credential:
        return None
    return credential.split("/", 1)[0] or None


def check_access(allowed: tuple[str, ...], headers: Mapping[str, str], query: Mapping[str, str]) -> None:
    """Raise AWS's 403 unless the request is signed by an allowed key (any key when none are listed)."""
    if not allowed:
        return
    key = access_key_id(headers, query)
    if key is None:
        raise ApiError("MissingAuthenticationTokenException", 403, "Missing Authentication Token")
    if key not in allowed:
        raise ApiError(
            "UnrecognizedClientException", 403, "The security token included in the request is invalid."
        )
