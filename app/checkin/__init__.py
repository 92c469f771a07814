"""Gate check-in: each ticket gets in once."""
