"""Embeddings -> ranked lists: exact chunked search (`exact`), FAISS flat / IVF / HNSW
indexes (`ann`), the seed's threshold query-expansion rerank (`rerank`), and adaptive
score normalisation against a cohort of artist centroids (`scorenorm`).
"""
