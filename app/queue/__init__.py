"""The virtual queue: one entry per (event, buyer), admitted in seq order as slots free up."""
