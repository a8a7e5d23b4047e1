"""Scoring and output: nDCG@100 with the competition's semantics (`metrics`), untrained
baselines (`baselines`), the evaluation table and report (`report`), submissions
(`submission`).
"""
