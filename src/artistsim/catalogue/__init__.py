"""A living catalogue: persistent store, query service, artist identification, label audit."""

from artistsim.catalogue.identify import artist_model, raw_scores

# Identification's scoring, public for callers that compare the methods on their own
# catalogues (benchmarks/bench_audit.py).
__all__ = ["artist_model", "raw_scores"]
