"""Events & ticketing GraphQL API."""
