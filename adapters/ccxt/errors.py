"""What goes wrong, in the port's terms: ccxt exceptions and refused batch elements
mapped to the port's errors (with the venue's own code kept), every message redacted of keys
and request signatures, and the one error of a venue that cannot be built as configured.

Secrets: every message leaving this module goes through ``redact``, and the ccxt logger of a
venue is replaced by ``RedactingLogger``, because ccxt logs request headers (which hold the
API key) at DEBUG."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import ccxt  # type: ignore[import-untyped]

from domain.venue import (
    DuplicateClientOrderId,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    VenueAuthenticationFailed,
    VenueError,
    VenueUnavailable,
)

_SIGNATURE = re.compile(r"(signature|sign)=[0-9A-Za-z%+/=]+", re.IGNORECASE)
_MESSAGE_LIMIT = 400


class CcxtConfigurationError(ValueError):
    """The venue cannot be built as configured: unknown exchange id, missing keys, missing
    capabilities, no sandbox. Raised at construction, never by a port method."""


def venue_error_code(exc: BaseException) -> str | None:
    """The venue's own error code in a ccxt exception (ccxt's message is ``<id> <body>``)."""
    text = str(exc)
    start = text.find("{")
    if start < 0:
        return None
    try:
        body, _ = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for key in ("code", "retCode", "ret_code"):
        if body.get(key) is not None:
            return str(body[key])
    return None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` without any of ``secrets`` and without request signatures."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SIGNATURE.sub(r"\1=***", text)


def describe(exc: BaseException, venue: str, secrets: Iterable[str]) -> str:
    message = redact(str(exc), secrets)
    if len(message) > _MESSAGE_LIMIT:
        message = message[:_MESSAGE_LIMIT] + "..."
    return f"{venue}: {type(exc).__name__}: {message}"


def order_error(
    exc: BaseException,
    venue: str,
    secrets: Iterable[str],
    duplicate_codes: frozenset[str] = frozenset(),
) -> VenueError:
    """The port error for a failed order request (create or cancel).

    What matters is whether the request may have taken effect. A venue that answered with a
    refusal did nothing (OrderRejected, RateLimited, VenueAuthenticationFailed); anything
    else after the request may have left is OutcomeUnknown, including the venue's 5xx
    answers that ccxt calls ExchangeNotAvailable: Binance documents a 503 as 'execution
    status unknown'. Only a declared maintenance is VenueUnavailable.
    """
    message = describe(exc, venue, secrets)
    if isinstance(exc, ccxt.DuplicateOrderId) or venue_error_code(exc) in duplicate_codes:
        return DuplicateClientOrderId(message)
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return RateLimited(message)
    if isinstance(exc, ccxt.OnMaintenance | ccxt.InvalidNonce):
        # Maintenance, or a timestamp outside the receive window: refused, nothing done.
        return VenueUnavailable(message)
    if isinstance(exc, ccxt.AuthenticationError):
        return VenueAuthenticationFailed(message)
    if isinstance(
        exc,
        ccxt.InsufficientFunds
        | ccxt.InvalidOrder
        | ccxt.BadRequest
        | ccxt.OperationRejected
        | ccxt.NotSupported
        | ccxt.ArgumentsRequired,
    ):
        return OrderRejected(message)
    # RequestTimeout, NetworkError, ExchangeNotAvailable, BadResponse, an unclassified
    # ExchangeError: the order may exist. Ask the venue; never assume.
    return OutcomeUnknown(message)


def read_error(exc: BaseException, venue: str, secrets: Iterable[str]) -> VenueError:
    """The port error for a failed read: nothing changed at the venue in any case."""
    message = describe(exc, venue, secrets)
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return RateLimited(message)
    if isinstance(exc, ccxt.AuthenticationError):
        return VenueAuthenticationFailed(message)
    if isinstance(exc, ccxt.OperationFailed):  # NetworkError and BadResponse included
        return VenueUnavailable(message)
    return VenueError(message)


# -- logging -------------------------------------------------------------------------------


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """The logger given to a ccxt exchange: ccxt logs request headers, API key included."""

    def __init__(self, logger: logging.Logger, secrets: Iterable[str]) -> None:
        super().__init__(logger, {})
        self._secrets = tuple(s for s in secrets if s)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args}"
        self.logger.log(level, "%s", redact(text, self._secrets), **kwargs)


def batch_element_error(
    exchange: Any, tables: Iterable[Mapping[str, Any]], info: Mapping[str, Any]
) -> BaseException:
    """The ccxt exception a refused element of a batch answer stands for, found as ccxt
    finds one for a whole request: by the venue's code in ``tables`` (ccxt's code ->
    exception tables that apply), then by its message. A code neither knows is an
    unclassified ExchangeError, which the port reads as an unknown outcome."""
    message = f"{exchange.id} {json.dumps(dict(info), default=str)}"
    try:
        for table in tables:
            exchange.throw_exactly_matched_exception(table, str(info.get("code")), message)
        broad = exchange.exceptions.get("broad") or {}
        exchange.throw_broadly_matched_exception(broad, str(info.get("msg")), message)
    except ccxt.BaseError as exc:
        found: BaseException = exc
        return found
    unclassified: BaseException = ccxt.ExchangeError(message)
    return unclassified
