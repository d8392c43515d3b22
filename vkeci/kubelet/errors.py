"""HTTP errors of the kubelet API, each with the status code and a kubelet-style message."""

from __future__ import annotations


class HttpError(Exception):
    """An error answered as ``status`` with ``message`` as the plain-text body."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(HttpError):
    """A query parameter or path is malformed (400)."""

    status = 400


class NotFound(HttpError):
    """No such pod or container on this node (404)."""

    status = 404
