"""The catalog's GraphQL types, queries and mutations."""
