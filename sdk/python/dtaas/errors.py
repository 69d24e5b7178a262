"""Exceptions raised by the SDK.

Every failure is a :class:`DtaasError`. When the appliance answered with its ``/v1`` error body
(``{"error": {"code", "message", "details"?}}``), the exception carries that ``code``,
``message`` and ``details`` and the HTTP ``status``, and its class follows the code
(:class:`NotFound` for ``not_found`` ...). Anything else (no answer, a body that is not the
appliance's, missing credentials) gets a code of the SDK's own, listed on each class; the body
of a server that is not the appliance is never copied into the message.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Type


class DtaasError(Exception):
    """Base class of every SDK error.

    Attributes:
        code: The API's error code (``not_found``, ``forbidden`` ...) or the SDK's own.
        message: The human-readable message.
        status: The HTTP status of the answer, when there was one.
        details: The API's ``error.details`` (a list of problems, each with ``item``,
            ``field`` and ``message``), when it gave some.
    """

    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        details: Optional[List[Dict[str, Any]]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status
        self.details: List[Dict[str, Any]] = list(details or [])

    def __str__(self) -> str:
        text = self.message
        for problem in self.details[:20]:
            parts = [
                str(problem[k])
                for k in ("item", "field", "message")
                if problem.get(k) not in (None, "")
            ]
            if parts:
                text += "\n  " + ": ".join(parts)
        prefix = f"{self.status} " if self.status is not None else ""
        return f"[{prefix}{self.code}] {text}"


class ConfigurationError(DtaasError):
    """No usable credentials or settings (code ``configuration``): no appliance URL, no API
    key, an unreadable profile file, or ``current_config()`` outside a servable."""

    code = "configuration"


class ConnectionFailed(DtaasError):
    """The appliance could not be reached, or the connection broke (code ``connection``)."""

    code = "connection"


class UnexpectedResponse(DtaasError):
    """An answer that is not the appliance's: not JSON, or JSON of another shape (code
    ``unexpected_response``). Its message names the status, never the body."""

    code = "unexpected_response"


class WrongType(DtaasError):
    """An object exists but is not of the kind asked for, e.g. ``App.from_id`` of a daemon
    (code ``wrong_type``)."""

    code = "wrong_type"


class Timeout(DtaasError):
    """A wait ran out of time (code ``timeout``)."""

    code = "timeout"


class BadRequest(DtaasError):
    """400: the input was refused (codes ``bad_request`` and ``invalid``; see ``details``)."""

    code = "bad_request"


class Unauthorized(DtaasError):
    """401: no credentials, or the API key is revoked, expired or mistyped."""

    code = "unauthorized"


class Forbidden(DtaasError):
    """403: the caller can see the object but lacks a capability on it."""

    code = "forbidden"


class NotFound(DtaasError):
    """404: no such object, or one the caller may not discover."""

    code = "not_found"


class Conflict(DtaasError):
    """409: the object's state does not allow it (already running, still in use ...)."""

    code = "conflict"


class TooLarge(DtaasError):
    """413: the request is larger than the appliance takes."""

    code = "too_large"


class RateLimited(DtaasError):
    """429: too many attempts; try again later."""

    code = "rate_limited"


class ServerError(DtaasError):
    """5xx: the appliance or its Docker engine failed (codes ``internal``, ``unavailable``,
    ``bad_gateway``, ``engine_unavailable``, ``engine_failed``)."""

    code = "internal"


_BY_CODE: Dict[str, Type[DtaasError]] = {
    "bad_request": BadRequest,
    "invalid": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "conflict": Conflict,
    "too_large": TooLarge,
    "rate_limited": RateLimited,
    "internal": ServerError,
    "unavailable": ServerError,
    "bad_gateway": ServerError,
    "engine_unavailable": ServerError,
    "engine_failed": ServerError,
}

_BY_STATUS: Dict[int, Type[DtaasError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    429: RateLimited,
}


def error_for(
    status: int, code: str, message: str, details: Optional[List[Dict[str, Any]]] = None
) -> DtaasError:
    """The exception for an API error body: chosen by ``code``, else by ``status``."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else DtaasError
    return cls(message, code=code, status=status, details=details)


__all__ = [
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "DtaasError",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Timeout",
    "TooLarge",
    "Unauthorized",
    "UnexpectedResponse",
    "WrongType",
    "error_for",
]
