"""Background work on arq: deferred expiry, sale status, repair, and the cron backstops.

Everything arq-specific lives in this folder (arq is in maintenance mode;
a switch to another queue touches only here). Jobs are thin: they call the
domain services, whose guarded writes make every job idempotent.
"""
