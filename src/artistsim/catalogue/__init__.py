"""A living catalogue: persistent store, query service, artist identification, label audit."""
