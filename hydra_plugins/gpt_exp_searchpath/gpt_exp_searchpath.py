"""Makes `python -m gpt_exp -m +sweep=grid` find the presets in the checkout's `sweeps/` folder.

Hydra discovers every module under the `hydra_plugins` namespace. This one adds, to gpt_exp's own
application only (recognised by its `conf/` folder on the search path):

- a config source that shows the Hydra presets of `sweeps/` as the config group `sweep`. The W&B
  sweep definitions living in the same folder (top-level `method` and `parameters`, read by
  `wandb sweep` and `python -m gpt_exp.tools.sweep_local`) are not Hydra configs and are left out, so
  `--help` lists only what `+sweep=` accepts;
- the resolver `${gpt_exp.direction:${task._target_}}`: `maximize` when the task's main metric is
  greater-is-better (accuracy, ROUGE), else `minimize` (loss), so an Optuna search never optimises
  the wrong way after `task=` changes;
- the resolver `${gpt_exp.model_name:${model.name},${model.init_from}}` in `run_name`: the name of the
  model the weights of `model.init_from` are (a GPT-1 run fine-tuned under `model=gpt2-tiny` is still
  named gpt1-tiny), else `model.name` (gpt_exp/model/build.py: source_model_name).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

CHECKOUT = Path(__file__).resolve().parents[2]
GROUP = "sweep"


def is_wandb_sweep(text: str) -> bool:
    """A W&B sweep definition: a mapping with `method` and `parameters` at the top."""
    try:
        loaded = OmegaConf.create(text)
    except Exception:
        return False
    return OmegaConf.is_dict(loaded) and "method" in loaded and "parameters" in loaded


class SweepsConfigSource(ConfigSource):
    """`sweep/<name>` -> `<folder>/<name>.yaml`, for the Hydra presets of one flat folder."""

    @staticmethod
    def scheme() -> str:
        return "gpt-exp-sweeps"

    def _presets(self) -> dict[str, Path]:
        folder = Path(self.path)
        if not folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(folder.glob("*.yaml")) if not is_wandb_sweep(p.read_text(encoding="utf-8"))}

    def _preset(self, config_path: str) -> Optional[Path]:
        group, _, name = config_path.partition("/")
        if group != GROUP or not name or "/" in name:
            return None
        return self._presets().get(name[:-5] if name.endswith(".yaml") else name)

    def load_config(self, config_path: str) -> ConfigResult:
        path = self._preset(config_path)
        if path is None:
            raise ConfigLoadError(f"Config not found: {config_path} (in {self.path})")
        text = path.read_text(encoding="utf-8")
        return ConfigResult(config=OmegaConf.create(text), path=self.full_path(), provider=self.provider,
                            header=ConfigSource._get_header_dict(text[:512]))

    def available(self) -> bool:
        return Path(self.path).is_dir()

    def is_group(self, config_path: str) -> bool:
        return config_path in ("", GROUP)

    def is_config(self, config_path: str) -> bool:
        return self._preset(config_path) is not None

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        if config_path == "":
            return [GROUP] if results_filter in (None, ObjectType.GROUP) else []
        if config_path == GROUP and results_filter in (None, ObjectType.CONFIG):
            return sorted(self._presets())
        return []


class GptExpSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        conf = CHECKOUT / "conf"
        ours = any(_local_dir(e.path) == conf for e in search_path.get_path())
        if ours and (CHECKOUT / "sweeps").is_dir():
            search_path.append("gpt-exp-sweeps", f"{SweepsConfigSource.scheme()}://{CHECKOUT / 'sweeps'}")


def _local_dir(path: str | None) -> Path | None:
    """`/x/conf` or `file:///x/conf` -> Path('/x/conf'); other schemes -> None."""
    if not path or ("://" in path and not path.startswith("file://")):
        return None
    return Path(path.removeprefix("file://")).resolve()


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
