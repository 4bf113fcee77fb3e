"""Vendored data files (see README.md here)."""
