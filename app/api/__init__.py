"""The GraphQL layer: turns requests into service calls and results into types. No rules here."""
