"""The registry of built-in datasets: a source module registers each of its datasets by name.

    @register_dataset("movie_reviews", package=Package("pypi", "vaderSentiment", "3.3.2"), member="...",
                      description="...", rules="...", label_names=("negative", "positive"))
    def build_movie_reviews(archive: Path) -> Built:
        ...   # the package's archive -> records per split

`gpt_exp.data.sources` imports every built-in source module, so importing it fills the registry;
`prepare(name)` (build.py) looks the name up here and caches what the builder returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, TypeVar

from gpt_exp.data.cache import Package

Record = Dict[str, Any]
T = TypeVar("T")


class UnknownNameError(KeyError):
    """A dataset or vocabulary name that is not built in; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


@dataclass
class Built:
    splits: Dict[str, List[Record]]
    groups: Dict[str, int] = field(default_factory=dict)    # independent units a split holds (works, news items ...)
    dropped: Dict[str, int] = field(default_factory=dict)   # reason -> source rows left out


Builder = Callable[[Path], Built]   # the package's archive -> records


@dataclass(frozen=True)
class Dataset:
    description: str
    package: Package
    member: str                       # where inside the archive the data is (provenance)
    rules: str                        # how records were made; a change triggers a rebuild
    build: Builder
    label_names: Tuple[str, ...] = ()


_DATASETS: Dict[str, Dataset] = {}


def register_dataset(name: str, *, description: str, package: Package, member: str, rules: str,
                     label_names: Sequence[str] = ()) -> Callable[[Builder], Builder]:
    """Decorator: the function becomes the builder of the built-in dataset `name` (`data.name=<name>`)."""
    def register(build: Builder) -> Builder:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice (again by {build.__module__}.{build.__name__})")
        _DATASETS[name] = Dataset(description, package, member, rules, build, tuple(label_names))
        return build
    return register


def dataset_names() -> List[str]:
    return sorted(_DATASETS)


def find_dataset(name: str) -> Dataset | None:
    return _DATASETS.get(name)


def get_dataset(name: str) -> Dataset:
    return lookup(_DATASETS, name, "dataset")


def lookup(registry: Dict[str, T], name: str, kind: str) -> T:
    """registry[name], or an UnknownNameError that lists the known names (and, for a dataset, your own files)."""
    if name not in registry:
        hint = " For your own data set data.files.train=... instead." if kind == "dataset" else ""
        raise UnknownNameError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry))}.{hint}")
    return registry[name]
