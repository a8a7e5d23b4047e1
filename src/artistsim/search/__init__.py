"""Embeddings -> ranked lists: exact chunked search (`exact`), FAISS flat / IVF / HNSW
indexes (`ann`), and the seed's threshold query-expansion rerank (`rerank`).
"""
