"""gpt_exp's OmegaConf resolvers, registered wherever Hydra composes (see gpt_exp_resolvers.py)."""
