"""`make bench`: the sale-day figures of DESIGN section 7, measured on the embedded default.

`python -m bench` runs the rush scenarios (see `bench.scenarios`) and prints
ratios measured within one run, because absolute times drift on shared machines.
"""
