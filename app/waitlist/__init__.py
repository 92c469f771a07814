"""The waitlist of a sold-out event, and its timed offers of stock that comes back."""
