"""Checkout sessions and slot accounting: at most CHECKOUT_LIMIT buyers per event hold a slot."""
