"""Flows of a sale that span several domains: cancellation, the live inventory, repair."""
