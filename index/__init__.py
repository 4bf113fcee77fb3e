"""Indexing flow: files -> loader -> chunker -> embedder -> store."""
