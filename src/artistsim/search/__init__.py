"""Embeddings -> ranked lists: exact chunked search (`exact`), FAISS flat / IVF / HNSW
indexes (`ann`), the seed's threshold query-expansion rerank (`rerank`), and adaptive
score normalisation against a cohort of artist centroids (`scorenorm`).
"""

from artistsim.search._faiss import available_cpus, omp_threads

# The thread plumbing is public for callers that time FAISS beside artistsim (benchmarks).
__all__ = ["available_cpus", "omp_threads"]
