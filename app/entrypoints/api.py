"""The status API and the dashboard (``tradecore serve``): read-only HTTP over the read models.

Every route is a GET; none changes state. When the store cannot be reached the server keeps
running and answers 503 with the reason, and tries again on the next request. Bad query
parameters get 422 with the reason (FastAPI's validation).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.exc import DBAPIError

from adapters.errors import StoreUnavailable
from app.bootstrap import SERVICE_POOL_SIZE, Core, Schema, bootstrap
from app.config import Settings
from app.entrypoints.cli.output import plain
from app.queries.audit import Audit
from app.queries.status_views import Bounds, ReadSide
from domain.errors import InvalidCommand

log = logging.getLogger(__name__)


class CoreHolder:
    """Connects on first use and again after a failure, so a server started while the store
    was down starts answering once it is back."""

    def __init__(self, settings: Settings, connect: Callable[[Settings], Core]) -> None:
        self.settings = settings
        self.connect = connect
        self._core: Core | None = None
        self._lock = threading.Lock()

    def get(self) -> Core:
        with self._lock:
            if self._core is None:
                self._core = self.connect(self.settings)
            return self._core

    def close(self) -> None:
        with self._lock:
            if self._core is not None:
                self._core.close()
                self._core = None


def _connect(settings: Settings) -> Core:
    # Embedded: migrated on first use like every command; external: must be at the head.
    return bootstrap(settings, schema=Schema.AUTO, pool_size=SERVICE_POOL_SIZE)


def create_app(settings: Settings, connect: Callable[[Settings], Core] = _connect) -> FastAPI:
    holder = CoreHolder(settings, connect)
    app = FastAPI(
        title="tradecore status API",
        version="1",
        description="Read-only: the read models of the safety chain. No endpoint changes state.",
        # FastAPI's /docs and /redoc pages load their scripts from a CDN; a desk's network
        # may not reach it. The schema itself is served at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.holder = holder
    bounds = Bounds.of(settings)

    def read_side() -> ReadSide:
        core = holder.get()
        return ReadSide(core.engine, core.runner, core.clock, bounds)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(_: Request, error: StoreUnavailable) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"store unavailable: {error}"})

    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, error: DBAPIError) -> JSONResponse:
        holder.close()  # reconnect on the next request
        reason = str(error.orig).splitlines()[0] if error.orig else str(error)
        return JSONResponse(status_code=503, content={"detail": f"store unavailable: {reason}"})

    @app.get("/api/patches/status", summary="The seven safeguards: ACTIVE or DEGRADED")
    def patches_status() -> Any:
        return plain(read_side().safeguards())

    @app.get("/api/status", summary="Policy, emergency, worker and the safeguards in brief")
    def status() -> Any:
        side = read_side()
        policy, emergency, position = side.policy_and_emergency()
        safeguards = side.safeguards()
        allowed = bool(policy and policy["allow_new_trades"] and not policy["emergency_mode"])
        return plain(
            {
                "status": safeguards["status"],
                "new_entries_allowed": allowed,
                "emergency_active": bool(emergency and emergency["active"]),
                "policy_version": policy["version"] if policy else None,
                "policy_view_position": position,
                "worker": side.worker(),
                "safeguards": {k: v["status"] for k, v in safeguards["safeguards"].items()},
            }
        )

    @app.get("/api/policy", summary="The policy as its read model shows it")
    def policy() -> Any:
        found, _, position = read_side().policy_and_emergency()
        if found is None:
            raise HTTPException(404, "no policy recorded yet")
        return plain({**found, "view_position": position})

    @app.get("/api/emergency", summary="The emergency latch and its flatten record")
    def emergency() -> Any:
        _, found, _ = read_side().policy_and_emergency()
        return plain(found or {"active": False, "activation_number": 0})

    @app.get("/api/risk", summary="Equity, peak, drawdown and breaker state; equity history")
    def risk(
        minutes: Annotated[int, Query(ge=0, le=7 * 24 * 60, description="history window")] = 60,
    ) -> Any:
        return plain(read_side().risk(minutes))

    @app.get("/api/positions", summary="Open positions as tradecore's open trades add up")
    def positions() -> Any:
        return plain(read_side().positions())

    @app.get("/api/trades", summary="Trades, newest last")
    def trades(
        open: Annotated[bool, Query(description="only open trades")] = False,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> Any:
        return plain(read_side().trades(open_only=open, limit=limit))

    @app.get("/api/incidents", summary="Emergency activations, newest first")
    def incident_list(limit: Annotated[int, Query(ge=1, le=1_000)] = 50) -> Any:
        return plain(read_side().incidents(limit))

    @app.get("/api/incidents/{ref}", summary="One incident, rebuilt from the log")
    def incident(ref: Annotated[str, Path(max_length=64)]) -> Any:
        return plain(_incident(holder.get(), ref))

    @app.get("/api/models", summary="Promoted versions and what each consumer runs")
    def models() -> Any:
        return plain(read_side().models())

    @app.get("/api/projections", summary="Each read model's position, head and lag")
    def projections() -> Any:
        return plain([{**asdict(p), "lag_events": p.lag} for p in read_side().projections()])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> str:
        return (
            resources.files("app.entrypoints.static").joinpath("dashboard.html").read_text("utf-8")
        )

    @app.get("/incidents/{ref}", response_class=HTMLResponse, include_in_schema=False)
    def incident_page(ref: Annotated[str, Path(max_length=64)]) -> str:
        from app.entrypoints.cli.incident_html import render  # noqa: PLC0415 - matplotlib is slow to load

        return render(_incident(holder.get(), ref))

    return app


def _incident(core: Core, ref: str) -> dict[str, Any]:
    try:
        return Audit(core, catch_up=False).incident(None if ref == "latest" else ref)
    except InvalidCommand as e:
        raise HTTPException(404, str(e)) from None
