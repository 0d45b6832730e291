"""Benchmarks for SPEC section 4: `python -m bench` runs every row, `python -m bench NAME` one.

Every load generator talks to 127.0.0.1 only and stops by itself. Figures that depend
on the machine are quoted as ratios measured side by side in the same run.
"""
