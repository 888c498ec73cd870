"""The dashboards' read models: the breaker's state and equity history (P0-07), one row per
emergency activation, and the version each model has promoted (P0-06).

The status API and the dashboard read only these (and the other read models); like every
projection, rows and tracking position are written in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects.postgresql import insert

from domain.account import Account
from domain.drawdown import BREAKER_ACTOR, drawdown
from domain.emergency import Emergency, activation_id_for
from domain.model_registry import ModelRegistry
from projections.runner import Projection
from projections.tables import (
    dashboard_facts,
    equity_history,
    incidents,
    model_promotions,
    risk_view,
)

INSTALLATION = "emergency_installation_id"


def _accepted_reading(e: Any) -> bool:
    return isinstance(e, Account.EquityRecorded) and e.status == "accepted"


def _accepted(e: Any) -> dict[str, Any]:
    """The risk row's values as an accepted reading ``e`` leaves them."""
    return {
        "last_reading_at": e.venue_at,
        "pending": False,
        "equity": e.equity,
        "peak": e.peak,
        "drawdown": e.drawdown,
        "last_accepted_at": e.venue_at,
    }


def _history_row(e: Any, position: int) -> dict[str, Any]:
    """The equity history's row for an accepted reading ``e`` at log ``position``."""
    return {
        "position": position,
        "account_id": e.originator_id,
        "at": e.venue_at,
        "equity": e.equity,
        "peak": e.peak,
        "drawdown": e.drawdown,
    }


ACCOUNT_EVENTS = (
    Account.Created,
    Account.EquityRecorded,
    Account.EquityReadingRejected,
    Account.ReadingUnconfirmed,
    Account.SoftBreach,
    Account.HardBreach,
    Account.Recovered,
    Account.PeakReset,
    Account.TransferRecorded,
)
EMERGENCY_EVENTS = (
    Emergency.Created,
    Emergency.Activated,
    Emergency.AccountFlat,
    Emergency.Triggered,
    Emergency.Reset,
)
MODEL_EVENTS = (ModelRegistry.ModelPromoted, ModelRegistry.ModelRolledBack)


class DashboardProjection(Projection):
    default_name = "dashboard"
    handles = (*ACCOUNT_EVENTS, *EMERGENCY_EVENTS, *MODEL_EVENTS)

    @classmethod
    def default_tables(cls) -> dict[str, Table]:
        return {
            "risk": risk_view,
            "history": equity_history,
            "incidents": incidents,
            "promotions": model_promotions,
            "facts": dashboard_facts,
        }

    def apply_batch(
        self, conn: Connection, events: Sequence[tuple[int, DomainEventProtocol[UUID]]]
    ) -> None:
        """As applying each in turn, with each run of accepted readings of one account
        written in two statements (their history rows in one insert, the risk row as the
        run's last reading leaves it) instead of two a reading: the breaker records one a
        second, or one a mark in a replay."""
        run: list[tuple[int, Any]] = []
        for position, event in events:
            e: Any = event
            if _accepted_reading(e) and (not run or run[-1][1].originator_id == e.originator_id):
                run.append((position, e))
                continue
            self._readings(conn, run)
            run = []
            if _accepted_reading(e):
                run.append((position, e))
            else:
                self.apply(conn, e, position)
        self._readings(conn, run)

    def _readings(self, conn: Connection, run: list[tuple[int, Any]]) -> None:
        if not run:
            return
        if len(run) == 1:
            self._account(conn, run[0][1], run[0][0])
            return
        conn.execute(
            self.tables["history"].insert(), [_history_row(e, position) for position, e in run]
        )
        last = run[-1][1]
        risk = self.tables["risk"]
        conn.execute(
            update(risk)
            .where(risk.c.account_id == last.originator_id)
            .values(updated_at=last.timestamp, **_accepted(last))
        )

    def apply(self, conn: Connection, event: DomainEventProtocol[UUID], position: int) -> None:
        e: Any = event
        if isinstance(e, ACCOUNT_EVENTS):
            self._account(conn, e, position)
        elif isinstance(e, EMERGENCY_EVENTS):
            self._emergency(conn, e)
        elif isinstance(e, MODEL_EVENTS):
            values = {
                "version": e.new_version,
                "changed_at": e.timestamp,
                "actor": e.actor,
                "reason": e.reason,
            }
            table = self.tables["promotions"]
            conn.execute(
                insert(table)
                .values(model=e.name, **values)
                .on_conflict_do_update(index_elements=["model"], set_=values)
            )

    # -- the breaker ------------------------------------------------------------------------

    def _account(self, conn: Connection, e: Any, position: int) -> None:
        risk = self.tables["risk"]
        if isinstance(e, Account.Created):
            conn.execute(
                insert(risk)
                .values(
                    account_id=e.originator_id,
                    account=e.account,
                    equity=None,
                    peak=0,
                    drawdown=0,
                    state="normal",
                    pending=False,
                    rejected_readings=0,
                    updated_at=e.timestamp,
                )
                .on_conflict_do_nothing(index_elements=["account_id"])
            )
            return
        values: dict[str, Any] = {"updated_at": e.timestamp}
        if isinstance(e, Account.EquityRecorded):
            values.update(last_reading_at=e.venue_at, pending=e.status == "pending")
            if e.status == "accepted":
                values.update(_accepted(e))
                conn.execute(self.tables["history"].insert().values(**_history_row(e, position)))
        elif isinstance(e, Account.EquityReadingRejected):
            values["rejected_readings"] = risk.c.rejected_readings + 1
        elif isinstance(e, Account.ReadingUnconfirmed):
            values["pending"] = False
        elif isinstance(e, Account.SoftBreach):
            values["state"] = "soft_breach"
        elif isinstance(e, Account.HardBreach):
            values["state"] = "hard_breach"
        elif isinstance(e, Account.Recovered):
            values["state"] = "normal"
        elif isinstance(e, Account.TransferRecorded):
            values.update(_transferred(e))
        elif isinstance(e, Account.PeakReset):
            equity = conn.execute(
                select(risk.c.equity).where(risk.c.account_id == e.originator_id)
            ).scalar_one_or_none()
            values.update(
                peak=e.new_peak,
                drawdown=Decimal(0) if equity is None else drawdown(Decimal(equity), e.new_peak),
            )
            if e.actor != BREAKER_ACTOR:  # an operator's reset ends any breach
                values.update(state="normal", pending=False)
        conn.execute(update(risk).where(risk.c.account_id == e.originator_id).values(**values))

    # -- incidents --------------------------------------------------------------------------

    def _emergency(self, conn: Connection, e: Any) -> None:
        table, facts = self.tables["incidents"], self.tables["facts"]
        if isinstance(e, Emergency.Created):
            conn.execute(
                insert(facts)
                .values(key=INSTALLATION, value=str(e.installation_id))
                .on_conflict_do_update(
                    index_elements=["key"], set_={"value": str(e.installation_id)}
                )
            )
            return
        number = e.activation_number
        if isinstance(e, Emergency.Activated):
            installation = conn.execute(
                select(facts.c.value).where(facts.c.key == INSTALLATION)
            ).scalar_one()
            conn.execute(
                insert(table)
                .values(
                    activation_number=number,
                    incident_id=activation_id_for(UUID(installation), number),
                    source=e.source,
                    reason=e.reason,
                    activated_by=e.actor,
                    activated_at=e.timestamp,
                )
                .on_conflict_do_nothing(index_elements=["activation_number"])
            )
            return
        values: dict[str, Any]
        if isinstance(e, Emergency.AccountFlat):
            values = {
                "flat": True,
                "flat_at": e.timestamp,
                "positions_closed": e.positions_closed,
                "orders_canceled": e.orders_canceled,
            }
            first = conn.execute(
                select(table.c.time_to_flat_ms).where(table.c.activation_number == number)
            ).scalar_one_or_none()
            if first is None:  # the first time this activation reached flat
                values["time_to_flat_ms"] = e.time_to_flat_ms
        elif isinstance(e, Emergency.Triggered):
            values = {"flat": e.flat}
        else:  # Reset
            values = {"reset_at": e.timestamp, "reset_by": e.actor, "reset_reason": e.reason}
        conn.execute(update(table).where(table.c.activation_number == number).values(**values))


def _transferred(e: Account.TransferRecorded) -> dict[str, Any]:
    """The risk row's change for a transfer: the peak (and the reference equity) moved with
    the cash, as transfers are not losses; before the first reading nothing moves."""
    values: dict[str, Any] = {}
    if e.equity is not None:
        values.update(equity=e.equity, peak=e.peak, drawdown=e.drawdown)
    if e.discarded_pending:
        values["pending"] = False
    return values
