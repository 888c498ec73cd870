"""The exchange port: the one interface through which the core sees and acts on a venue.

Adapters implement it (the persistent paper venue, any ccxt futures exchange). Symbols are
ccxt's unified linear-perpetual form (``BTC/USDT:USDT``). Quantities are base-currency
contracts as ``Decimal``; a position's ``quantity`` is always positive, its ``side`` says
which way it points.

Errors are mapped by every adapter to the small set below, because the flattener must know
exactly one thing about a failure: did the order possibly reach the venue or not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:  # numpy: not loaded by every command that reads a venue's types
    from domain.market_data import Candles

T = TypeVar("T")

Side = Literal["buy", "sell"]
PositionSide = Literal["long", "short"]
OrderType = Literal["market", "limit", "stop"]
OrderStatus = Literal["open", "closed", "canceled", "expired", "rejected"]
PositionMode = Literal["one_way", "hedge"]
# deposit/withdrawal: cash entering or leaving the venue account; transfer_in/transfer_out:
# cash moved between this (futures) wallet and another wallet of the same owner.
TransferKind = Literal["deposit", "withdrawal", "transfer_in", "transfer_out"]
TRANSFER_KINDS: tuple[TransferKind, ...] = ("deposit", "withdrawal", "transfer_in", "transfer_out")
INFLOWS: frozenset[str] = frozenset({"deposit", "transfer_in"})


class VenueError(Exception):
    """Base of the errors an exchange adapter raises."""


class OrderRejected(VenueError):
    """The venue refused the order (invalid, insufficient funds, reduce-only violation).
    It did not and will not execute."""


class DuplicateClientOrderId(OrderRejected):
    """An order with this client order id already exists at the venue."""


class OutcomeUnknown(VenueError):
    """A timeout or network error after the request may have left: the order may or may
    not exist. Resolve it by asking the venue for the client order id; never assume."""


class VenueUnavailable(VenueError):
    """The venue cannot be reached or is in maintenance; nothing was done. Retry later."""


class RateLimited(VenueUnavailable):
    """The venue refused the request for its rate limit; nothing was done. Retry later."""


class VenueAuthenticationFailed(VenueError):
    """The venue refused the keys. Retrying will not help; an operator must act."""


def outcome_of(call: Callable[[], T]) -> T | VenueError:
    """What ``call`` returned, or the VenueError it raised: one element of a batch answer."""
    try:
        return call()
    except VenueError as e:
        return e


@dataclass(frozen=True)
class Position:
    symbol: str
    side: PositionSide
    quantity: Decimal  # > 0
    entry_price: Decimal
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    mode: PositionMode = "one_way"
    leverage: Decimal | None = None  # the symbol's leverage at the venue, where it says

    @property
    def notional(self) -> Decimal:
        """Quantity x mark (the entry price while no mark is known), settlement currency."""
        return self.quantity * (self.mark_price or self.entry_price)

    @property
    def closing_side(self) -> Side:
        return "sell" if self.side == "long" else "buy"


@dataclass(frozen=True)
class Order:
    id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: str
    quantity: Decimal
    filled: Decimal
    price: Decimal | None
    average_price: Decimal | None
    status: OrderStatus
    reduce_only: bool
    stop_price: Decimal | None = None
    position_side: PositionSide | None = None  # set in hedge mode
    conditional: bool = False  # a stop/trigger order, which some venues list separately
    fee: Decimal = Decimal(0)  # in the settlement currency, for what has filled so far

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: Side
    quantity: Decimal
    client_order_id: str
    type: OrderType = "market"
    price: Decimal | None = None  # limit price
    stop_price: Decimal | None = None  # trigger price of a stop order
    reduce_only: bool = False
    position_side: PositionSide | None = None  # required in hedge mode


@dataclass(frozen=True)
class AccountFill:
    """One execution on the account, whoever placed the order (tradecore or anyone else)."""

    symbol: str
    side: Side
    quantity: Decimal  # > 0
    price: Decimal
    fee: Decimal  # in the settlement currency
    client_order_id: str | None
    at: datetime
    position_side: PositionSide | None = None  # hedge mode


@dataclass(frozen=True)
class Balance:
    currency: str
    wallet: Decimal
    unrealized_pnl: Decimal
    at: datetime | None = None  # the venue's time of the figures, when it says

    @property
    def equity(self) -> Decimal:
        return self.wallet + self.unrealized_pnl


@dataclass(frozen=True)
class CashTransfer:
    """Cash that entered or left the futures wallet without trading: not a profit or a loss.

    ``amount`` is positive, in the settlement currency; ``kind`` says which way it went.
    ``venue_id`` is the venue's own id of the ledger entry (unique per venue account), the
    key that makes recording it idempotent. ``at`` is the venue's time of the entry.
    """

    venue_id: str
    kind: TransferKind
    amount: Decimal  # > 0
    currency: str
    at: datetime

    @property
    def net(self) -> Decimal:
        """The signed change to the wallet: + for money in, - for money out."""
        return self.amount if self.kind in INFLOWS else -self.amount


class ExchangePort(Protocol):
    """What the core needs of a futures venue. Every method may raise a VenueError."""

    name: str
    # Seconds an answered order may take to show in fetch_positions: a venue's account
    # service can trail its matching engine, counted from the fill (see ``check_delay``).
    position_lag: float
    # True when each call is a network round trip that may overlap others (the flattener
    # then makes the independent calls of one step at once); the paper venue answers each
    # call in a transaction of its own, one after another, so it says False.
    concurrent_requests: bool
    # Seconds between two reads of the venue's transfer ledger: a ledger endpoint can be
    # costly in rate-limit weight. The breaker reads it at least this often, and always before
    # it re-reads a jump held for confirmation (a transfer is the likeliest cause of a jump).
    transfer_interval: float

    def check_delay(self) -> float:
        """Seconds the flattener waits after an answered order before the read that must show
        it: ``position_lag`` less the time the network already took (never negative)."""
        ...

    def fetch_positions(self) -> list[Position]:
        """Every open position (quantity > 0), in both position modes."""
        ...

    def fetch_open_orders(self) -> list[Order]:
        """Every open order on every symbol, conditional (stop/trigger) orders included."""
        ...

    def fetch_balance(self) -> Balance: ...

    def fetch_transfers(self, since: datetime | None) -> list[CashTransfer]:
        """Cash transfers of the futures wallet (deposits, withdrawals, transfers between
        the owner's wallets), oldest first: every one at or after ``since`` (None: as far
        back as the venue keeps by default). May return older ones too: callers skip the
        ids they already know. A venue that keeps no such ledger returns []."""
        ...

    def fetch_mark_price(self, symbol: str) -> Decimal: ...

    def fetch_closes(self, symbol: str, limit: int) -> list[Decimal]:
        """Up to ``limit`` recent closing prices of ``symbol``, oldest first (one-minute
        candles where the venue has them)."""
        ...

    def fetch_candles(self, symbol: str, limit: int) -> Candles:
        """Up to ``limit`` recent one-minute OHLCV candles of ``symbol``, oldest first (the
        paper venue makes one from each mark move, with no volume)."""
        ...

    def create_order(self, request: OrderRequest) -> Order:
        """Send an order. The answer may be an acknowledgement only (status open, nothing
        filled yet): ask ``fetch_order_by_client_id`` for the fill. Raises OrderRejected
        (DuplicateClientOrderId), OutcomeUnknown, VenueUnavailable (RateLimited),
        VenueAuthenticationFailed."""
        ...

    def create_orders(self, requests: Sequence[OrderRequest]) -> list[Order | VenueError]:
        """Send several orders together, in as few requests as the venue allows (the paper
        venue: one transaction). One outcome per request, in order: the Order (perhaps an
        acknowledgement only) or the VenueError that order met, OutcomeUnknown where it may
        have executed. One order's failure never hides another's outcome."""
        ...

    def fetch_fills(self, requests: Sequence[OrderRequest]) -> dict[str, Order]:
        """The orders sent for ``requests`` as the venue shows them now (filled or not), by
        client order id, in as few requests as the venue allows: how a caller learns the
        fills of orders ``create_orders`` answered with an acknowledgement only. An order not
        found is left out. Raises VenueError."""
        ...

    def cancel_order(self, order: Order) -> None:
        """Cancel one open order. An order already gone is not an error. Raises
        OutcomeUnknown (a timeout), VenueUnavailable, VenueAuthenticationFailed."""
        ...

    def cancel_all_orders(self, symbol: str) -> int:
        """Cancel every open order on ``symbol``, conditional ones included; returns how
        many were canceled."""
        ...

    def cancel_all_orders_on(self, symbols: Sequence[str]) -> dict[str, int | VenueError]:
        """``cancel_all_orders`` for each of ``symbols``, together where the venue allows:
        per symbol, how many were canceled or the VenueError met."""
        ...

    def fetch_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        """The order with this client order id, or None if the venue has no such order."""
        ...

    def fetch_position_mode(self, symbol: str) -> PositionMode:
        """How ``symbol``'s positions are held: ``one_way`` (one net position) or ``hedge``
        (a long and a short apart; every order must then name its ``position_side``)."""
        ...

    def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        """Make ``leverage`` (> 0, e.g. ``Decimal(2)`` for 2x) the symbol's leverage at the
        venue, for its margin from the next order on. Setting the leverage it already has is
        not an error. Raises OrderRejected when the venue refuses it (out of its range, too
        little margin for an open position at it), VenueUnavailable, OutcomeUnknown,
        VenueAuthenticationFailed."""
        ...

    def fetch_leverage(self, symbol: str) -> Decimal:
        """The symbol's leverage at the venue now (what its next order's margin uses)."""
        ...


@runtime_checkable
class FillHistory(Protocol):
    """A venue that lists the account's executions: the evidence of a close made outside
    tradecore (its price and fee). A venue without it leaves such a close to the mark."""

    def fetch_account_fills(self, symbol: str, since: datetime) -> list[AccountFill]:
        """Every execution on ``symbol`` at or after ``since``, oldest first. Raises
        VenueError."""
        ...
