"""Well-known aggregate ids: one policy and one emergency latch per installation.

Deterministic ids make "create on first use" safe under concurrency: two processes that
both create the policy collide on version 1 and one of them retries, instead of two
policies existing side by side (which would be the split brain P0-01 forbids).
"""

from uuid import UUID, uuid5

NAMESPACE = UUID("6f1c3c2e-6a55-4f0e-9d43-4b1f0f5f7a10")

POLICY_ID = uuid5(NAMESPACE, "tradecore/policy")
EMERGENCY_ID = uuid5(NAMESPACE, "tradecore/emergency")
# The lock between order senders (shared) and the emergency flattener's sweep (exclusive).
ORDER_FLOW_LOCK = uuid5(NAMESPACE, "tradecore/order-flow")
RECONCILE_LOCK = uuid5(NAMESPACE, "tradecore/reconcile")
# One position-sizing agent (its Q-table) per installation.
SIZING_AGENT_ID = uuid5(NAMESPACE, "tradecore/sizing-agent")


def market_regime_id(symbol: str) -> UUID:
    """The regime aggregate of one symbol."""
    return uuid5(NAMESPACE, f"tradecore/regime/{symbol}")


def account_id(account: str) -> UUID:
    """The Account aggregate (equity readings, drawdown breaker) of one venue account."""
    return uuid5(NAMESPACE, f"tradecore/account/{account}")


def worker_lock_id(account: str) -> UUID:
    """The advisory lock one worker per account holds; a second waits as a hot standby."""
    return uuid5(NAMESPACE, f"tradecore/worker/{account}")
