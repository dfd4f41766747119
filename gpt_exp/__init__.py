"""gpt_exp: configuration-driven GPT-1 / GPT-2 experiments with MindSpore, Hydra and W&B."""

__version__ = "0.1.0"
