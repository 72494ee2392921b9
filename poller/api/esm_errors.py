"""Errors of the Lambda API as AWS sends them over REST-JSON (DESIGN §1.9, spec §1.1, §1.6).

boto3 reads the code from the `x-amzn-ErrorType` header and the message from the body's
`message`, so `client.exceptions.InvalidParameterValueException` and friends are raised as they
are against Lambda.
"""

from __future__ import annotations

from dataclasses import dataclass

NOT_FOUND_MESSAGE = "The resource you requested does not exist."


@dataclass(frozen=True, slots=True)
class ApiError(Exception):
    code: str
    status: int
    message: str
    user: bool = True
    """User errors carry `"Type": "User"` (spec §1.6); AWS's ValidationException does not."""

    def body(self) -> dict[str, str]:
        return {"Type": "User", "message": self.message} if self.user else {"message": self.message}


def invalid(message: str) -> ApiError:
    if message.startswith("1 validation error detected") and "Member must not be null" not in message:
        # spec §1.6: the model's own constraints (an enum, a range) come back as ValidationException,
        # without `Type`; a missing StartingPosition is Lambda's own InvalidParameterValueException.
        return ApiError("ValidationException", 400, message, user=False)
    return ApiError("InvalidParameterValueException", 400, message)


def conflict(message: str) -> ApiError:
    return ApiError("ResourceConflictException", 409, message)


def not_found(message: str = NOT_FOUND_MESSAGE) -> ApiError:
    return ApiError("ResourceNotFoundException", 404, message)
