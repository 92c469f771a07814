"""Purchases and the tickets they issue: all-or-nothing, idempotent, repairable after a crash."""
