"""Contract files: ``contracts/<source>.yaml`` parsed, compiled, cached per file change, and
looked up by source."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ..errors import ContractError, UnknownSource, did_you_mean
from .model import Contract
from .validate import CompiledContract


def parse_contract(path: Path) -> Contract:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(f"{path}: a contract is a mapping with name, event_time and fields")
    data.setdefault("name", path.stem)
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


_cache: dict[Path, tuple[tuple, dict[str, CompiledContract]]] = {}


def load_contracts(folder: Path) -> dict[str, CompiledContract]:
    """Parse and compile every ``*.yaml`` in ``folder``; recompiled only when a file changes."""
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    cached = _cache.get(folder)
    if cached and cached[0] == stamp:
        return cached[1]
    compiled = {f.stem: CompiledContract(parse_contract(f)) for f in files}
    _cache[folder] = (stamp, compiled)
    return compiled


def get_contract(contracts: dict[str, CompiledContract], source: str) -> CompiledContract:
    try:
        return contracts[source]
    except KeyError:
        hint = did_you_mean(source, contracts) or f"known sources: {', '.join(sorted(contracts)) or 'none'}"
        raise UnknownSource(f"no contract for source {source[:100]!r}", hint=hint) from None
