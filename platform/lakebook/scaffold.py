"""``lakebook init DIR``: a new workspace with a starter pipeline around its first source.

The files are the templates in ``templates/init/`` (package data), rendered with the source's
choices: the entity (a required string field to group by), the event time and the numbers to
aggregate. Placeholders are ``{{key}}`` in contents and file names; a ``.tmpl`` suffix keeps a
template out of the package's modules. The contract is the template's example, or one inferred
from a sample of events (``--from``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from .config import CONFIG_FILE
from .contracts import Contract, infer_contract
from .errors import ContractError, LakebookError
from .names import IDENTIFIER_RULE, is_identifier, needs_quoting

DEFAULT_SOURCE = "events"
OWNER = "you@example.org"
MAX_MEASURES = 3
_NUMERIC = ("int32", "int64", "float32", "float64")
_STARTER_COLUMNS = {"day", "events", "event_timestamp", "copy_number", "e"}  # what the starter's SQL names itself
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_GITIGNORE = "gitignore"
_CONTRACT = "contracts/{{source}}.yaml"


@dataclass(frozen=True)
class Choices:
    """What the starter pipeline is built around, read from the contract."""

    entity: str
    event_time: str
    measures: tuple[str, ...]


@dataclass(frozen=True)
class Created:
    """A new workspace: its folder, source, choices and the files written (relative paths)."""

    root: Path
    source: str
    choices: Choices
    files: tuple[str, ...]
    inferred_from: int | None


def init_workspace(root: Path, source: str | None = None, sample: Path | None = None) -> Created:
    """Write a workspace in ``root`` with a starter pipeline for ``source``; its contract is
    inferred from ``sample`` (JSON Lines) when given. Nothing is written if any file it would
    write exists already (``.gitignore`` is added to, not replaced)."""
    if (root / CONFIG_FILE).exists():
        raise LakebookError(f"{root / CONFIG_FILE} already exists", hint="that folder is a workspace already")
    source = source or _source_from(sample)
    if not is_identifier(source):
        raise LakebookError(f"source name {source!r} is not valid", hint=f"a source name is {IDENTIFIER_RULE}")
    inferred = infer_contract(sample, source) if sample is not None else None
    templates = _templates()
    values = {"name": _project_name(root), "source": source, "table": f"{source}_daily", "owner": OWNER}
    contract_text = inferred.to_yaml() if inferred else _render(templates[_CONTRACT], values)
    contract = Contract.model_validate(yaml.safe_load(contract_text))
    choices = choose(contract)
    values |= _pipeline_values(values["table"], choices)
    files = {_render(path, values): _render(text, values) for path, text in templates.items()
             if path not in (_CONTRACT, _GITIGNORE)}
    files[f"contracts/{source}.yaml"] = contract_text
    taken = sorted(path for path in files if (root / path).exists())
    if taken:
        raise LakebookError(f"{root} already has {', '.join(taken)}",
                            hint="init a new folder, or move those files away first")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    _add_to_gitignore(root / ".gitignore", templates[_GITIGNORE].splitlines())
    return Created(root.resolve(), source, choices, tuple(sorted(files)), inferred.events if inferred else None)


def choose(contract: Contract) -> Choices:
    """The entity: a required string field other than the event id, preferring one with an
    enum of the most values (a device over a status); the measures: its numeric fields. The
    starter's SQL names them bare, so fields named like a SQL keyword or like the transform's
    own columns are not chosen."""
    if needs_quoting(contract.event_time):
        raise ContractError(f"contract {contract.name}: its event time field {contract.event_time!r} is a SQL keyword",
                            hint="the starter queries name it bare: rename the field (e.g. event_at) in the "
                                 "events or the contract")
    usable = {name for name in contract.fields if not needs_quoting(name) and name not in _STARTER_COLUMNS}
    strings = [name for name, spec in contract.fields.items()
               if spec.type == "string" and (spec.required or name in contract.entity_keys) and name != contract.event_id
               and name in usable]
    if not strings:
        raise ContractError(f"contract {contract.name}: no required string field to group by",
                            hint="the starter pipeline aggregates per entity (a device, a user): add a required "
                                 "string field to the events or the contract")
    with_enum = [name for name in strings if contract.fields[name].enum]
    entity = max(with_enum, key=lambda name: len(contract.fields[name].enum)) if with_enum else strings[0]
    numbers = [name for name, spec in contract.fields.items() if spec.type in _NUMERIC and name in usable]
    numbers.sort(key=lambda name: not contract.fields[name].required)
    return Choices(entity, contract.event_time, tuple(numbers[:MAX_MEASURES]))


def _pipeline_values(table: str, choices: Choices) -> dict[str, str]:
    """The computed parts of the templates: the transform's aggregates, the view's schema, the chart."""
    columns = ["events"]
    for i, measure in enumerate(choices.measures):
        columns += [f"avg_{measure}"] + ([f"min_{measure}", f"max_{measure}"] if i == 0 else [])
    expressions = {"events": "count(*)"}
    for column in columns[1:]:
        kind, _, measure = column.partition("_")
        expressions[column] = f"{kind}(e.{measure})"
    aggregates = ",\n".join(f"    CAST({expressions[c]} AS DOUBLE) AS {c}" for c in columns)
    chart = columns[1] if choices.measures else "events"
    return {
        "entity": choices.entity, "event_time": choices.event_time, "aggregates": aggregates,
        "feature_fields": "\n".join(f'        Field(name="{c}", dtype=Float64),' for c in columns),
        "chart_column": chart, "feature_columns": repr(columns), "chart_title": f"Mean {choices.measures[0]}" if choices.measures else "Events",
    }


def _templates() -> dict[str, str]:
    """Every template file by its path relative to ``templates/init`` (``.tmpl`` dropped)."""
    found: dict[str, str] = {}

    def walk(folder, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            else:
                found[f"{prefix}{entry.name.removesuffix('.tmpl')}"] = entry.read_text()

    walk(resources.files("lakebook").joinpath("templates", "init"), "")
    return found


def _render(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _source_from(sample: Path | None) -> str:
    """The sample file's name when it is a valid source name (greenhouse.jsonl: greenhouse)."""
    stem = sample.name.split(".")[0] if sample is not None else ""
    return stem if is_identifier(stem) else DEFAULT_SOURCE


def _project_name(root: Path) -> str:
    """The folder's name as an identifier: Feast's project name takes letters, digits and _."""
    name = re.sub(r"[^a-z0-9_]+", "_", root.resolve().name.lower()).strip("_")
    return name if is_identifier(name) else f"ws_{name}".rstrip("_")


def _add_to_gitignore(path: Path, entries: list[str]) -> None:
    lines = path.read_text().splitlines() if path.exists() else []
    missing = [entry for entry in entries if entry and entry not in lines]
    if missing:
        path.write_text("\n".join(lines + missing) + "\n")
