"""gpt_exp: configuration-driven GPT-1 / GPT-2 experiments with MindSpore, Hydra and W&B."""
from pathlib import Path

__version__ = "0.1.0"

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"  # the Hydra config tree: train.yaml and its groups
