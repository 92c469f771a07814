"""Prometheus metrics: one registry per process, served at /metrics (and by the worker on METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUEST_SECONDS = Histogram(
    "ticketing_http_request_seconds", "HTTP request latency", ["method", "path", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PURCHASES = Counter("ticketing_purchases_total", "Purchase attempts by outcome", ["outcome"])
TICKETS_ISSUED = Counter("ticketing_tickets_issued_total", "Tickets issued")
SOLD_OUTS = Counter("ticketing_sold_out_total", "Purchases refused for lack of stock", ["code"])
ADMISSIONS = Counter("ticketing_admissions_total", "Buyers admitted to checkout")
EXPIRIES = Counter("ticketing_queue_expiries_total", "Queue entries expired (with their sessions)")
QUEUE_WAITING = Gauge("ticketing_queue_waiting", "Buyers WAITING, all events (sampled by the sweep)")
QUEUE_ADMITTED = Gauge("ticketing_queue_admitted", "Buyers ADMITTED, all events (sampled by the sweep)")
JOB_RUNS = Counter("ticketing_job_runs_total", "Background job runs", ["job", "outcome"])
REPAIRS = Counter("ticketing_repairs_total", "Corrections made by the repair", ["kind"])
