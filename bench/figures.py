"""The rush's figures, computed from the buyers' own records (wall-clock milliseconds, one machine).

- the sell-out: the first moment a buyer learnt the sale was over, i.e. the
  answer of the order that took the last ticket or the first SOLD_OUT or CLOSED
  a buyer was told, whichever came first (with tickets left unsold, the latter:
  the sale was over for the buyers all the same);
- orders/s until sold out: orders over the time from the first joinQueue sent
  to the sell-out;
- buyer p50/p95: from the common start to the order's answer, over buyers with an order;
- every buyer answered: from the sell-out, and from the start, to the last answer
  (an order, a refusal, a closing push, or an error reply); None while anybody got no answer;
- step latencies: where a buyer's time went (p50 and p95 per step).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

ANSWERED = ("order", "refused", "closed", "error")
# What a buyer is told when the sale is over for everyone.
SALE_OVER = {"SOLD_OUT", "CLOSED"}
# (name, from mark, to mark) of each step of a buyer who bought.
STEPS = (
    ("subscribe", "start", "subscribed"),
    ("joinQueue", "joinSent", "joinAnswered"),
    ("wait for admission", "joinAnswered", "admitted"),
    ("startCheckout", "admitted", "checkoutAnswered"),
    ("purchaseTickets", "checkoutAnswered", "purchaseAnswered"),
)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of `values`; None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _s(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


def rush_figures(records: list[dict], *, go_at_ms: float, tickets: int) -> dict[str, Any]:
    """Throughput, latencies and answers of one rush."""
    bought = [r for r in records if r["outcome"] == "order"]
    sold = sum(len(r["order"]["tickets"]) for r in bought)
    joins = [r["at"]["joinSent"] for r in records if "joinSent" in r["at"]]
    order_times = sorted(r["at"]["purchaseAnswered"] for r in bought)
    sold_out = sold >= tickets
    told_over = [
        r["at"]["answered"] for r in records
        if r["outcome"] in ("refused", "closed") and SALE_OVER & set(r["detail"].get("codes") or [r["detail"].get("status")])
    ]
    # Whichever buyers learn first: the last ticket's order answered, or somebody told it is over.
    marks = told_over + ([order_times[-1]] if sold_out and order_times else [])
    sold_out_at = min(marks) if marks else None
    until = sold_out_at or (order_times[-1] if order_times else None)
    first_join = min(joins) if joins else None
    window = (until - first_join) / 1000 if until and first_join else None
    latencies = [r["at"]["purchaseAnswered"] - go_at_ms for r in bought]

    outcomes = Counter(r["outcome"] for r in records)
    answered_at = [r["at"]["answered"] for r in records if r["outcome"] in ANSWERED]
    everyone = outcomes["no_answer"] == 0 and bool(answered_at)
    last = max(answered_at) if answered_at else None
    refusals = Counter(
        f"{r['detail']['step']}:{','.join(r['detail'].get('codes') or [r['detail'].get('status', '?')])}"
        for r in records if r["outcome"] in ("refused", "closed")
    )
    stuck_at = Counter(r["detail"]["step"] for r in records if r["outcome"] == "no_answer")
    errors = Counter(str(r["detail"])[:160] for r in records if r["outcome"] == "error")
    steps = {}
    for name, start, end in STEPS:
        spans = [r["at"][end] - r["at"][start] for r in bought if start in r["at"] and end in r["at"]]
        steps[name] = {"p50_s": _s(percentile(spans, 50)), "p95_s": _s(percentile(spans, 95))}
    return {
        "orders": len(bought),
        "tickets_sold_to_buyers": sold,
        "sold_out": sold_out,
        "sold_out_after_s": _s(sold_out_at - go_at_ms) if sold_out_at else None,
        "orders_per_s": round(len(bought) / window, 2) if window else None,
        "orders_window_s": round(window, 3) if window else None,
        "p50_s": _s(percentile(latencies, 50)),
        "p95_s": _s(percentile(latencies, 95)),
        "unsold": max(0, tickets - sold),
        "all_answered_after_sell_out_s": _s(max(0.0, last - sold_out_at)) if everyone and sold_out_at else None,
        "all_answered_after_start_s": _s(last - go_at_ms) if everyone else None,
        "last_answer_after_sell_out_s": _s(max(0.0, last - sold_out_at)) if last and sold_out_at else None,
        "outcomes": dict(outcomes),
        "no_answer": outcomes["no_answer"],
        "no_answer_at_step": dict(stuck_at),
        "refusals": dict(refusals),
        "errors": dict(errors.most_common(10)),
        "admitted_by": dict(Counter(r["admittedBy"] for r in records if r["admittedBy"])),
        "pushes": sum(r["pushes"] for r in records),
        "steps": steps,
    }
