"""The waitlist's part of the API (app/waitlist)."""
