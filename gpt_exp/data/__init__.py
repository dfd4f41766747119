"""Data: built-in datasets and vocabularies fetched from package registries into a cache, and record loading."""
