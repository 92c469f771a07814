"""The catalog: venues, events and their ticket types, and event search."""
