"""gpt_exp's own GPT-1 / GPT-2 Cells and their Hugging Face checkpoint format."""
from gpt_exp.model.gpt import GPT, GPTConfig
from gpt_exp.model.hf_weights import (config_from_hf, config_to_hf, load_pretrained, load_state_dict,
                                      save_pretrained, state_dict)

__all__ = ["GPT", "GPTConfig", "config_from_hf", "config_to_hf", "load_pretrained", "load_state_dict",
           "save_pretrained", "state_dict"]
