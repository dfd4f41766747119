"""Data: built-in datasets and vocabularies fetched from package registries into a cache, and record loading."""

SPLITS = ("train", "validation", "test")  # every dataset gpt_exp builds or loads has these three, in this order
