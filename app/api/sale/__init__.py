"""Sale day: queue, checkout, purchases, tickets, check-in and live subscriptions.

The types are the contract's; the resolvers arrive with the sale-day issue
(#3). Until then each answers a top-level error with code NOT_IMPLEMENTED,
so clients can already be written against the full schema.
"""
