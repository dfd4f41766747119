"""gpt_exp's resolvers, registered when Hydra discovers its plugins (it imports every module under the
`hydra_plugins` namespace), so they exist in every composition: the CLI's, a test's `compose`, a notebook's.

- `${gpt_exp.direction:${task._target_}}`: `maximize` when the task's main metric is greater-is-better
  (accuracy, ROUGE), else `minimize` (loss), so an Optuna search never optimises the wrong way after `task=`
  changes;
- `${gpt_exp.model_name:${model.name},${model.init_from}}` in `run_name`: the name of the model the weights of
  `model.init_from` are (a GPT-1 run fine-tuned under `model=gpt2-tiny` is still named gpt1-tiny), else
  `model.name` (gpt_exp/model/build.py: source_model_name).

The sweep presets are an ordinary config group, conf/sweep/, and need no plugin.
"""
from __future__ import annotations

from omegaconf import OmegaConf


def _direction(task_target: str) -> str:
    from hydra.utils import get_class

    return "maximize" if getattr(get_class(task_target), "greater_is_better", False) else "minimize"


if not OmegaConf.has_resolver("gpt_exp.direction"):
    OmegaConf.register_new_resolver("gpt_exp.direction", _direction)


def _model_name(name: str, init_from: str | None) -> str:
    if not init_from:  # the common case, without importing gpt_exp.model (and MindSpore)
        return name
    from gpt_exp.model.build import source_model_name

    return source_model_name(init_from, name)


if not OmegaConf.has_resolver("gpt_exp.model_name"):
    OmegaConf.register_new_resolver("gpt_exp.model_name", _model_name)
