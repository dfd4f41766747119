"""Hydra plugin: the checkout's `sweeps/` folder as the config group `sweep` (see gpt_exp_searchpath.py)."""
