"""Errors of the Lambda API as AWS sends them over REST-JSON (DESIGN §1.9, spec §1.1, §1.6).

boto3 reads the code from the `x-amzn-ErrorType` header and the message from the body's `message`
or `Message`; it fills the modeled members (`response["Message"]`, `response["Type"]`) only under
the names the error's shape in botocore's lambda model declares, so each body uses those names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from poller.config.aws_model import error_members

NOT_FOUND_MESSAGE = "The resource you requested does not exist."
_MODEL_VALIDATION = re.compile(r"^\d+ validation errors? detected")


@dataclass(frozen=True, slots=True)
class ApiError(Exception):
    code: str
    status: int
    message: str
    user: bool = True
    """User errors carry `"Type": "User"` (spec §1.6), server faults `"Service"`; AWS's
    ValidationException carries no `Type`."""

    def body(self) -> dict[str, str]:
        members = error_members(self.code)
        if members is None:  # not in the model (ValidationException, the access errors): AWS's wire shape
            return {"Type": "User", "message": self.message} if self.user else {"message": self.message}
        message_key = "Message" if "Message" in members else "message"
        body = {message_key: self.message}
        if "Type" in members:
            body["Type"] = "User" if self.user else "Service"
        return body


def invalid(message: str) -> ApiError:
    if _MODEL_VALIDATION.match(message) and "Member must not be null" not in message:
        # spec §1.6: the model's own constraints (an enum, a range) come back as ValidationException,
        # without `Type`; a missing StartingPosition is Lambda's own InvalidParameterValueException.
        return ApiError("ValidationException", 400, message, user=False)
    return ApiError("InvalidParameterValueException", 400, message)


def conflict(message: str) -> ApiError:
    return ApiError("ResourceConflictException", 409, message)


def not_found(message: str = NOT_FOUND_MESSAGE) -> ApiError:
    return ApiError("ResourceNotFoundException", 404, message)


def in_use(message: str) -> ApiError:
    return ApiError("ResourceInUseException", 400, message)


def too_large(max_size: int, operation: str) -> ApiError:
    """A body over the listener's limit, answered as Lambda answers an oversized request (413)."""
    return ApiError(
        "RequestEntityTooLargeException",
        413,
        f"Request must be smaller than {max_size} bytes for the {operation} operation",
    )


def server_fault() -> ApiError:
    return ApiError("ServiceException", 500, "Internal error while serving the request.", user=False)
