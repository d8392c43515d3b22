"""ECI error replies: the JSON shape and HTTP statuses the real service uses (eci-openapi.md §4.3, §5.3).

The SDK maps 4xx -> ClientException, 5xx -> ServerException and any error carrying a positive
`x-acs-retry-after` header -> ThrottlingException, so the status code and that header are what matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HOST_ID = "eci.aliyuncs.com"


@dataclass
class ApiError(Exception):
    """An error answered to the client as `{"RequestId","HostId","Code","Message","Recommend"}`."""

    code: str
    message: str
    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self, request_id: str) -> dict[str, str]:
        """The error JSON the SDK parses."""
        return {
            "RequestId": request_id,
            "HostId": HOST_ID,
            "Code": self.code,
            "Message": self.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={self.code}&product=Eci&requestId={request_id}",
        }


def missing(name: str) -> ApiError:
    """A mandatory parameter is absent."""
    return ApiError(
        "MissingParameter",
        f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
    )


def invalid(name: str, why: str) -> ApiError:
    """A parameter is present but not acceptable; `why` says what is expected."""
    return ApiError("InvalidParameter", f'The specified parameter "{name}" is not valid: {why}')


def not_found(group_id: str) -> ApiError:
    """The container group does not exist (code as handled by Terraform's ECI provider; status inferred)."""
    return ApiError("InvalidParameter.NotFound", f'The specified container group "{group_id}" does not exist.')


def incorrect_status(group_id: str, status: str, action: str) -> ApiError:
    """The group is in a state that does not allow the action."""
    return ApiError(
        "IncorrectStatus",
        f'The container group "{group_id}" is {status}; {action} is not allowed in this status.',
    )


def throttled(retry_after_ms: int, code: str = "Throttling.User") -> ApiError:
    """Flow control: carries `x-acs-retry-after` so the SDK raises ThrottlingException."""
    return ApiError(
        code,
        "Request was denied due to user flow control.",
        400,
        {"x-acs-retry-after": str(max(1, int(retry_after_ms)))},
    )


SIGNATURE_MISMATCH = "Specified signature does not match our calculation."
INCOMPLETE_SIGNATURE = "The request signature does not conform to Aliyun standards."
AK_NOT_FOUND = "The AccessKey ID provided does not exist in our records."
