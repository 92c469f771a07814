"""Sale day: queue, checkout, purchases, tickets, check-in and live subscriptions.

The GraphQL layer of the sale: resolvers call the services in app/queue,
app/checkout, app/orders, app/checkin and app/sale, and map their results
and DomainErrors to the contract's payloads; no business rule lives here.
"""
