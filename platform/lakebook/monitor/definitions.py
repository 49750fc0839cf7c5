"""Check definitions: ``<monitor.dir>/*.yaml`` (default ``monitors/``), each a list of checks
under ``checks:``, plus defaults derived from the contracts.

A check, in the vocabulary of data-quality tools::

    checks:
      - check: freshness(raw.flights)   # kind(arguments)
        warn: "> 30m"                   # levels: when the value is bad (quote them: YAML reads > as a folded text)
        fail: "> 2h"
        for: 5m                         # how long it must fail before it fires
        labels: {team: flight-ops}      # added to its alerts (routing)
        by: ingest                      # the kind's options (kinds.py)

``name`` defaults to the expression made a name (``freshness_raw_flights``). ``for:`` left out
means two evaluations in a row: a check never fires on a single evaluation unless it says
``for: 0``. Every error names the file, the check and the key. A check named like a default
replaces it; ``{name: <default>, enabled: false}`` turns a default off.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import MonitorDefinitionError, UnknownCheck, did_you_mean
from .kinds import DURATION, KINDS, NUMBER, OPEN_OPTIONS, OPTIONAL_ARGS, Kind, kind

COMMON_KEYS = ("check", "name", "description", "warn", "fail", "for", "labels", "enabled")
HINTS = {
    "check": "write check: kind(arguments), e.g. freshness(raw.flights) or reject_rate(flights)",
    "level": "write a comparison and a threshold in the kind's unit, quoted: \"> 2h\", \"< 100\", \"> 5%\"",
    "for": "write a duration: 0, 90s, 5m, 1h",
    "name": "write a name of lower-case letters, digits and _",
    "labels": "write labels: {team: flight-ops} (text values)",
}
NAME = re.compile(r"^[a-z][a-z0-9_]{0,127}$")
_EXPRESSION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(([^()]*)\)\s*$")
_ARGUMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_CONDITION = re.compile(r"^\s*(?:when\s+)?(<=|>=|==|!=|<|>|=)\s*(-?\d+(?:\.\d+)?)\s*([a-z%]*)\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_SECONDS = {"ms": 0.001, None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq, "==": operator.eq,
    "!=": operator.ne}
# The units a level may be written in, per kind unit, and what one of each is in the kind's unit.
_LEVEL_UNITS = {"s": {"": 1, **{u: s for u, s in _SECONDS.items() if u}}, "ms": {"": 1, "ms": 1, "s": 1000, "m": 60000},
                "%": {"": 1, "%": 1}}


def parse_duration(value: Any) -> float:
    """Seconds, from a number of seconds or ``500ms``, ``90s``, ``30m``, ``2h``, ``1d``, ``1w``."""
    match = _DURATION.match(str(value)) if not isinstance(value, bool) else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration")
    return float(match.group(1)) * _SECONDS[match.group(2)]


@dataclass(frozen=True)
class Condition:
    """A level: the value is bad when ``value <op> threshold`` (threshold in the kind's unit)."""

    op: str
    threshold: float
    text: str

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.threshold)


def parse_condition(text: Any, unit: str) -> Condition:
    """``"> 2h"`` for a kind in seconds, ``"> 5%"`` for one in percent, ``"< 100"`` otherwise."""
    match = _CONDITION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a level")
    op, number, suffix = match.groups()
    scale = _LEVEL_UNITS.get(unit, {"": 1}).get(suffix)
    if scale is None:
        allowed = ", ".join(u for u in _LEVEL_UNITS.get(unit, {"": 1}) if u) or "none (a plain number)"
        raise ValueError(f"{text!r}: unit {suffix!r} does not fit values in {unit or 'counts'} (units: {allowed})")
    return Condition(op, float(number) * scale, text.strip())


class CheckDefinition(BaseModel):
    """The keys every check has; the rest of its keys are its kind's options."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    check: str | None = None
    name: str | None = Field(None, pattern=NAME.pattern)
    description: str = ""
    warn: str | None = None
    fail: str | None = None
    for_: str | float | None = Field(None, alias="for")
    labels: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True


@dataclass(frozen=True)
class Check:
    """A loaded check: what ``measure(workspace, check, now)`` and the engine use."""

    name: str
    expression: str
    kind: str
    args: tuple[str, ...]
    options: dict[str, Any]
    warn: Condition | None
    fail: Condition | None
    for_s: float | None  # None: two evaluations in a row
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""
    origin: str = ""  # the file it comes from, or "contract <source>"
    enabled: bool = True

    @property
    def unit(self) -> str:
        return KINDS[self.kind].unit

    def level(self, value: float | None) -> str:
        """``unknown`` (nothing measured), ``fail``, ``warn`` or ``ok``."""
        if value is None:
            return "unknown"
        if self.fail is not None and self.fail.holds(value):
            return "fail"
        if self.warn is not None and self.warn.holds(value):
            return "warn"
        return "ok"

    def as_json(self) -> dict:
        return {"name": self.name, "check": self.expression, "kind": self.kind, "args": list(self.args),
                "options": self.options, "warn": self.warn.text if self.warn else None,
                "fail": self.fail.text if self.fail else None, "for_s": self.for_s, "labels": self.labels,
                "description": self.description, "origin": self.origin, "enabled": self.enabled}


def default_name(expression: str) -> str:
    """``freshness(raw.flights)`` -> ``freshness_raw_flights``."""
    return re.sub(r"[^a-z0-9]+", "_", expression.lower()).strip("_")[:128]


def parse_expression(expression: str) -> tuple[str, tuple[str, ...]]:
    """``kind(a, b)`` -> (kind, (a, b)), checked against the kind's arguments."""
    match = _EXPRESSION.match(expression)
    if match is None:
        raise ValueError(f"{expression!r} is not kind(arguments)")
    name, inner = match.group(1), match.group(2)
    spec = kind(name)
    args = tuple(a.strip() for a in inner.split(",")) if inner.strip() else ()
    bad = [a for a in args if not _ARGUMENT.match(a)]
    if bad:
        raise ValueError(f"{expression}: {bad[0]!r} is not a name")
    if name == "missing_share" and len(args) == 1 and args[0].count(".") == 2:
        args = tuple(args[0].rsplit(".", 1))  # missing_share(raw.flights.dep_delay)
    allowed = {len(spec.args), len(spec.args) + len(OPTIONAL_ARGS.get(name, ()))}
    if name in OPTIONAL_ARGS:
        allowed.add(0)
    if len(args) not in allowed:
        wanted = ", ".join((*spec.args, *OPTIONAL_ARGS.get(name, ()))) or "nothing"
        raise ValueError(f"{expression}: {name} takes {wanted}")
    for arg_name, value in zip(spec.args, args):
        if arg_name == "table" and value.count(".") != 1:
            raise ValueError(f"{expression}: {value!r} is not a catalog table zone.name (e.g. raw.flights)")
    return name, args


def build_check(raw: Any, where: str, defaults: dict[str, "Check"] | None = None) -> Check:
    """One check of a file from its mapping; MonitorDefinitionError naming ``where`` and the key."""
    if not isinstance(raw, dict):
        raise MonitorDefinitionError(f"{where}: a check is a mapping with check: and its levels", hint=HINTS["check"])
    common = {k: v for k, v in raw.items() if k in COMMON_KEYS}
    options = {k: v for k, v in raw.items() if k not in COMMON_KEYS}
    try:
        definition = CheckDefinition.model_validate(common)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]).replace("for_", "for")
        hint = HINTS.get(key.split(".")[0], HINTS["level"] if key in ("warn", "fail") else None)
        raise MonitorDefinitionError(f"{where}: {key}: {err['msg']}", hint=hint) from None
    if definition.check is None:
        return _toggle_default(definition, where, defaults or {})
    try:
        kind_name, args = parse_expression(definition.check)
    except MonitorDefinitionError as exc:
        raise MonitorDefinitionError(f"{where}: check: {exc.message}", hint=exc.hint) from None
    except ValueError as exc:
        raise MonitorDefinitionError(f"{where}: check: {exc}", hint=HINTS["check"]) from None
    spec = KINDS[kind_name]
    options = _options(options, kind_name, spec, where)
    levels = {key: _level(getattr(definition, key), spec, where, key) for key in ("warn", "fail")}
    if levels["warn"] is None and levels["fail"] is None:
        if spec.default_fail is None:
            raise MonitorDefinitionError(f"{where}: {definition.check} has no level",
                                         hint=f"add warn: and/or fail:, e.g. fail: \"{_example(spec)}\"")
        levels["fail"] = parse_condition(spec.default_fail, spec.unit)
    return Check(
        name=definition.name or default_name(definition.check), expression=f"{kind_name}({', '.join(args)})",
        kind=kind_name, args=args, options=options, warn=levels["warn"],
        fail=levels["fail"], for_s=_for(definition.for_, where), labels=definition.labels,
        description=definition.description, origin=where.split(":")[0], enabled=definition.enabled)


def _toggle_default(definition: CheckDefinition, where: str, defaults: dict[str, Check]) -> Check:
    """``{name: <a default>, enabled: false}``: the default, turned off (or on)."""
    if definition.name not in defaults:
        guess = did_you_mean(definition.name or "", defaults)
        raise MonitorDefinitionError(f"{where}: check: missing", hint=(
            f"{guess + ' ' if guess else ''}{HINTS['check']}; a check without check: names a default to turn off"))
    return replace(defaults[definition.name], enabled=definition.enabled, origin=where.split(":")[0])


def _example(spec: Kind) -> str:
    return {"s": "> 1h", "%": "> 5%", "ms": "> 500ms"}.get(spec.unit, "> 0")


def _level(text: str | None, spec: Kind, where: str, key: str) -> Condition | None:
    if text is None:
        return None
    try:
        return parse_condition(text, spec.unit)
    except ValueError as exc:
        raise MonitorDefinitionError(f"{where}: {key}: {exc}",
                                     hint=f"write a comparison and a threshold, quoted: \"{_example(spec)}\"") from None


def _for(value: str | float | None, where: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise MonitorDefinitionError(f"{where}: for: {exc}", hint=HINTS["for"]) from None


def _options(given: dict[str, Any], kind_name: str, spec: Kind, where: str) -> dict[str, Any]:
    """The kind's options with their defaults, durations in seconds; an unknown key named."""
    if kind_name in OPEN_OPTIONS:
        return dict(given)
    options: dict[str, Any] = {}
    for key, value in given.items():
        if key not in spec.options:
            allowed = [*COMMON_KEYS, *spec.options]
            guess = did_you_mean(str(key), allowed)
            raise MonitorDefinitionError(f"{where}: {key}: unknown key for a {kind_name} check",
                                         hint=f"{guess + ' ' if guess else ''}allowed keys: {', '.join(allowed)}")
    for key, (kind_of, default) in spec.options.items():
        value = given.get(key, default)
        try:
            options[key] = parse_duration(value) if kind_of == DURATION else float(value) if kind_of == NUMBER \
                else str(value)
        except ValueError as exc:
            raise MonitorDefinitionError(f"{where}: {key}: {exc}", hint=HINTS["for"] if kind_of == DURATION else None) \
                from None
    return options


# -- loading -----------------------------------------------------------------------------------------
@dataclass
class CheckSet:
    """The workspace's checks that load (by name, in file order, then the defaults), and why
    each file or check that does not load does not."""

    checks: dict[str, Check] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> list[Check]:
        return [c for c in self.checks.values() if c.enabled]

    def check(self, name: str) -> Check:
        if name in self.checks:
            return self.checks[name]
        guess = did_you_mean(name, self.checks)
        raise UnknownCheck(f"no check {name!r}", hint=guess or f"checks: {', '.join(self.checks) or 'none'}")


def monitors_dir(workspace) -> Path:
    folder = Path(workspace.settings.monitor.dir)
    return folder if folder.is_absolute() else workspace.root / folder


def where_checks_come_from(workspace) -> str | None:
    """A line for a workspace whose checks are not all declared: no monitors folder (the
    contracts' defaults only), or neither that nor contracts (no checks); None otherwise."""
    if definition_files(monitors_dir(workspace)):
        return None
    if workspace.settings.monitor.defaults and workspace.contracts():
        return f"no {workspace.settings.monitor.dir}/*.yaml: the contracts' default checks only (freshness, reject rate)"
    return f"no checks: add {workspace.settings.monitor.dir}/*.yaml (README, Monitoring), or contracts for the defaults"


def definition_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def load_checks(workspace, *, strict: bool = False) -> CheckSet:
    """Every check of the workspace: its files' and, with ``monitor.defaults``, the contracts'
    defaults a file does not replace. With ``strict``, the first problem is raised."""
    defaults = default_checks(workspace) if workspace.settings.monitor.defaults else {}
    found = CheckSet()
    for path in definition_files(monitors_dir(workspace)):
        try:
            checks = load_file(path, defaults, shown=path.relative_to(workspace.root)
                               if path.is_relative_to(workspace.root) else path)
        except MonitorDefinitionError as exc:
            if strict:
                raise
            found.problems[path.name] = exc.message + (f" ({exc.hint})" if exc.hint else "")
            continue
        _add(found, checks, path.name, strict)
    for name, check in defaults.items():
        found.checks.setdefault(name, check)
    return found


def _add(found: CheckSet, checks: list[Check], file: str, strict: bool) -> None:
    for check in checks:
        if check.name in found.checks:
            message = f"{file}: check {check.name!r} is declared twice (also in {found.checks[check.name].origin})"
            if strict:
                raise MonitorDefinitionError(message, hint="give one of them another name:")
            found.problems[f"{file}:{check.name}"] = message
            continue
        found.checks[check.name] = check


def load_file(path: Path, defaults: dict[str, Check] | None = None, *, shown: str | Path | None = None) -> list[Check]:
    """The checks of one file; errors name it as ``shown`` (default: its path) and the check."""
    label = str(shown or path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise MonitorDefinitionError(f"{label} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}",
                                     hint="quote levels that start with > or <: warn: \"> 2h\"") from None
    if raw is None:
        return []
    if not isinstance(raw, dict) or set(raw) - {"checks"}:
        extra = sorted(set(raw) - {"checks"}) if isinstance(raw, dict) else []
        guess = did_you_mean(str(extra[0]), ["checks"]) if extra else None
        raise MonitorDefinitionError(f"{label}: {'unknown key ' + repr(extra[0]) if extra else 'not a mapping'}",
                                     hint=f"{guess + ' ' if guess else ''}a monitors file holds checks: [...]")
    if not isinstance(raw.get("checks") or [], list):
        raise MonitorDefinitionError(f"{label}: checks: is a list of checks", hint=HINTS["check"])
    return [build_check(item, _where(label, i, item), defaults) for i, item in enumerate(raw.get("checks") or [])]


def _where(label: str, index: int, item: Any) -> str:
    shown = item.get("name") or item.get("check") if isinstance(item, dict) else None
    return f"{label}: check {index + 1}" + (f" ({shown})" if shown else "")


def default_checks(workspace) -> dict[str, Check]:
    """Per events source: its raw table fresh within 6 h (warn) / 24 h (fail), and at most 1 %
    (warn) / 5 % (fail) of its events rejected over the last hour. A blob source has none: its
    files come when they come (a fleet list once a year); its checks are declared."""
    checks = {}
    for source, contract in sorted(workspace.contracts().items()):
        if contract.contract.is_blob:
            continue
        origin = f"contract {source}"
        for expression, warn, fail, options in (
            (f"freshness(raw.{source})", "> 6h", "> 24h", {"by": "ingest"}),
            (f"reject_rate({source})", "> 1%", "> 5%", {"window": 3600.0}),
        ):
            kind_name, args = parse_expression(expression)
            unit = KINDS[kind_name].unit
            check = Check(default_name(expression), expression, kind_name, args, options, parse_condition(warn, unit),
                          parse_condition(fail, unit), None, {}, f"default check of the contract {source}", origin)
            checks[check.name] = check
    return checks
