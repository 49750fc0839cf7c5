"""Contract files: ``contracts/<source>.yaml`` parsed, compiled, cached per file change, and
looked up by source.

Each file is compiled on its own, so a file that does not compile takes down no other
source. Until it is fixed, its source is served by the last version of the file this
process compiled (none if it never compiled here: then the source answers 503 with the
error as hint); the error is in ``ContractSet.problems`` and logged once per change of the file.

``<source>.inferred.yaml`` beside a contract is no contract: it holds the fields inferred
from the first file of a blob source that says ``infer: true`` (contracts/inferred.py),
and that contract takes them as its fields until it lists its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..errors import ContractError, ContractUnavailable, UnknownSource, did_you_mean
from .model import Contract, keyword_warning
from .validate import CompiledContract

log = logging.getLogger("lakebook.contracts.loading")


INFERRED_SUFFIX = ".inferred.yaml"


def inferred_path(contract_path: Path) -> Path:
    """Where the fields inferred for the source of ``contract_path`` are written."""
    return contract_path.with_name(contract_path.stem + INFERRED_SUFFIX)


def parse_contract(path: Path) -> Contract:
    try:
        data = yaml.safe_load(path.read_text())
        inferred = _inferred_fields(path, data)
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(f"{path}: a contract is a mapping with name, event_time and fields")
    data.setdefault("name", path.stem)
    if inferred:
        data["fields"] = inferred
    try:
        contract = Contract.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'contract'}: {e['msg']}" for e in exc.errors()
        )
        raise ContractError(f"{path}: {problems}") from None
    if contract.name != path.stem:
        raise ContractError(f"{path}: name {contract.name!r} must match the file name {path.stem!r}")
    return contract


def _inferred_fields(path: Path, data) -> dict | None:
    """The inferred fields of a blob contract that asks for them and lists none, if any were written."""
    if not isinstance(data, dict) or not data.get("infer") or data.get("fields"):
        return None
    written = inferred_path(path)
    loaded = yaml.safe_load(written.read_text()) if written.is_file() else None
    return loaded.get("fields") if isinstance(loaded, dict) else None


@dataclass(frozen=True)
class _File:
    stamp: tuple  # (mtime_ns, size) of the file as last read
    good: CompiledContract | None  # the last version of the file that compiled
    problem: str | None = None  # why the file as it is now does not compile


@dataclass(frozen=True)
class ContractSet:
    """The contracts of a folder as served: ``contracts`` by source (a broken file's last good
    version included) and ``problems``, by source, of the files that do not compile now."""

    stamp: tuple
    files: dict[str, _File] = field(repr=False)
    contracts: dict[str, CompiledContract]
    problems: dict[str, str]


_cache: dict[Path, ContractSet] = {}


def load_contract_set(folder: Path) -> ContractSet:
    """Every ``*.yaml`` in ``folder``, each compiled again only when it changes."""
    stamps = _stamps(folder)
    cached = _cache.get(folder)
    if cached and cached.stamp == tuple(stamps.items()):
        return cached
    previous = cached.files if cached else {}
    files = {path.stem: _compiled(path, stamp, previous.get(path.stem)) for path, stamp in stamps.items()}
    loaded = ContractSet(tuple(stamps.items()), files,
                         {name: f.good for name, f in files.items() if f.good is not None},
                         {name: f.problem for name, f in files.items() if f.problem})
    _cache[folder] = loaded
    return loaded


def load_contracts(folder: Path) -> dict[str, CompiledContract]:
    """The contracts served from ``folder`` (see load_contract_set); the same dict until a file changes."""
    return load_contract_set(folder).contracts


def _stamps(folder: Path) -> dict[Path, tuple]:
    """(mtime_ns, size) of each contract file, with those of its inferred fields when there are."""
    stamps = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if path.name.endswith(INFERRED_SUFFIX):
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed since the listing
            continue
        stamps[path] = (stat.st_mtime_ns, stat.st_size, *_stamp_of(inferred_path(path)))
    return stamps


def _stamp_of(path: Path) -> tuple:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return ()
    return (stat.st_mtime_ns, stat.st_size)


def _compiled(path: Path, stamp: tuple, previous: _File | None) -> _File:
    if previous is not None and previous.stamp == stamp:
        return previous
    try:
        compiled = CompiledContract(parse_contract(path))
    except Exception as exc:  # noqa: BLE001 - whatever is in the file, the other sources go on
        message = exc.message if isinstance(exc, ContractError) else f"{type(exc).__name__}: {exc}"
        problem = f"{path.parent.name}/{path.name}: {message.removeprefix(f'{path}: ')}"
        good = previous.good if previous is not None else None
        log.error("%s (%s)", problem, "its last good version is served until the file is fixed" if good
                  else f"source {path.stem!r} is not served until the file is fixed")
        return _File(stamp, good, problem)
    if warning := keyword_warning(compiled.contract):
        log.warning("%s/%s: %s", path.parent.name, path.name, warning)
    return _File(stamp, compiled)


def get_contract(contracts: dict[str, CompiledContract], source: str,
                 problems: dict[str, str] | None = None) -> CompiledContract:
    """The contract of ``source``: UnknownSource if there is none, ContractUnavailable if its
    file does not compile and no version of it ever did (``problems`` of load_contract_set)."""
    try:
        return contracts[source]
    except KeyError:
        if problems and source in problems:
            raise ContractUnavailable(f"the contract of source {source!r} does not compile", retry_after_s=30,
                                      hint=f"{problems[source]}; fix the file (it is read again by itself)") from None
        hint = did_you_mean(source, contracts) or f"known sources: {', '.join(sorted(contracts)) or 'none'}"
        raise UnknownSource(f"no contract for source {source[:100]!r}", hint=hint) from None
