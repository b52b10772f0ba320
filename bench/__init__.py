"""Benchmarks: each figure is a ratio against a baseline measured side by side in the same run.

Absolute timings on a shared machine mean little; a subject and its baseline, interleaved and
repeated (medians), say how much the project adds on top of the work it cannot avoid.
Run `python -m bench` (all figures) or `python -m bench FIGURE ...`.
"""
