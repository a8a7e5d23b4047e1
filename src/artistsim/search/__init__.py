"""Embeddings -> ranked lists: exact chunked search (`exact`), FAISS flat / IVF / HNSW
indexes (`ann`), and the one ranking pipeline (`pipeline`: search -> AS-norm -> weighted
query expansion -> rerank) that `predict`, the catalogue and the service all call, built
from runs and their saved settings by `loader`.
"""

from artistsim.search._faiss import available_cpus, omp_threads

# The thread plumbing is public for callers that time FAISS beside artistsim (benchmarks).
__all__ = ["available_cpus", "omp_threads"]
