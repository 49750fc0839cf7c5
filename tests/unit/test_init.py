"""`lakebook init`: the contract inferred from a sample of events, and the starter workspace's
files loading as the workspace's own (contract, transform, jobs, checks, notebooks)."""

import json
from datetime import date

import nbformat
import orjson
import pytest
from click.testing import CliRunner

from events import greenhouse
from lakebook.cli import cli
from lakebook.contracts import Contract, infer_contract, parse_contract
from lakebook.errors import ContractError, LakebookError
from lakebook.scaffold import choose, init_workspace
from lakebook.workspace import Workspace


def write_sample(path, events):
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    return path


def test_inference_types_required_enums_and_bounds(tmp_path):
    events = [greenhouse(i) for i in range(40)]
    for i, event in enumerate(events):
        event |= {"door_open": i % 5 == 0, "count": i, "day_of": "2026-03-01", "serial": f"s{i}"}
        if i % 3 == 0:
            event["battery"] = 3.3 if i % 2 else None   # present in some, null in others
    inferred = infer_contract(write_sample(tmp_path / "greenhouse.jsonl", events), "greenhouse")
    fields = inferred.contract.fields

    assert {name: spec.type for name, spec in fields.items()} == {
        "reading_id": "string", "device": "string", "ts": "timestamp", "temp_c": "float64", "humidity": "int64",
        "status": "string", "door_open": "bool", "count": "int64", "day_of": "date", "serial": "string",
        "battery": "float64"}
    assert inferred.events == 40
    assert [n for n, s in fields.items() if s.required] == [
        "reading_id", "device", "ts", "temp_c", "humidity", "status", "door_open", "count", "day_of", "serial"]
    assert fields["device"].enum == ["gh-east", "gh-north", "gh-south", "gh-west"]
    assert fields["status"].enum == ["ok", "warn"]
    assert fields["serial"].enum is None and fields["reading_id"].enum is None   # 40 distinct values
    temps = [e["temp_c"] for e in events]
    assert (fields["temp_c"].min, fields["temp_c"].max) == (min(temps), max(temps))
    assert (fields["count"].min, fields["count"].max) == (0, 39)
    assert (fields["battery"].min, fields["battery"].max) == (3.3, 3.3)
    assert inferred.contract.event_time == "ts" and inferred.contract.event_id == "reading_id"


def test_enums_need_enough_events_and_few_values(tmp_path):
    def status_enum(count, values):
        sample = [greenhouse(i, status=f"s{i % values}") for i in range(count)]
        return infer_contract(write_sample(tmp_path / "s.jsonl", sample), "s").contract.fields["status"].enum

    assert status_enum(19, 2) is None
    assert status_enum(20, 2) == ["s0", "s1"]
    assert status_enum(30, 10) == [f"s{i}" for i in range(10)]
    assert status_enum(30, 11) is None


def test_event_time_and_event_id_choice(tmp_path):
    base = {"device": "a", "received_at": "2026-03-01T00:00:05+01:00"}
    sample = [base | {"created_at": f"2026-03-01T00:0{i}:00Z", "time": f"2026-03-01T00:0{i}:01Z", "id": f"e{i}"}
              for i in range(5)]
    contract = infer_contract(write_sample(tmp_path / "a.jsonl", sample), "a").contract
    assert contract.event_time == "time"          # a preferred name over the first timestamp field
    assert contract.event_id == "id"

    repeated = [e | {"id": "same"} for e in sample]
    assert infer_contract(write_sample(tmp_path / "b.jsonl", repeated), "b").contract.event_id is None
    unnamed = [{k: v for k, v in e.items() if k not in ("time", "id")} | {"code": f"c{i}"} for i, e in enumerate(sample)]
    contract = infer_contract(write_sample(tmp_path / "c.jsonl", unnamed), "c").contract
    assert contract.event_time == "received_at"   # required, and first
    assert contract.event_id is None              # "code" is unique but not named like an id
    one = infer_contract(write_sample(tmp_path / "d.jsonl", sample[:1]), "d").contract
    assert one.event_id is None                   # one event says nothing about uniqueness


def test_the_written_contract_loads_and_accepts_its_sample(tmp_path):
    events = [greenhouse(i) for i in range(30)] + [greenhouse(30, humidity=None)]
    sample = write_sample(tmp_path / "greenhouse.jsonl", events)
    text = infer_contract(sample, "greenhouse").to_yaml(today=date(2026, 3, 9))
    assert text.startswith(f"# inferred from 31 events of {sample} on 2026-03-09: review before use\n")
    assert "  humidity: {type: int64, min: 40, max: 89}\n" in text     # not required: one null
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "greenhouse.yaml").write_text(text)
    contract = parse_contract(tmp_path / "contracts" / "greenhouse.yaml")
    from lakebook.contracts import CompiledContract

    result = CompiledContract(contract).validate(events)
    assert not result.rejected and result.accepted.num_rows == 31
    assert CompiledContract(contract).validate([greenhouse(1, device="gh-attic")]).rejected


@pytest.mark.parametrize("lines, message", [
    (None, "no such file"),
    (b"", "no events"),
    (b"\n  \n", "no events"),
    (b'{"ts": "2026-01-01T00:00:00Z"}\n{"ts": oops}\n', "line 2: not valid JSON"),
    (b'{"ts": "2026-01-01T00:00:00Z"}\n\n[1, 2]\n', "line 3: an event is a JSON object, not a list"),
    (b'"just a string"\n', "line 1: an event is a JSON object, not a string"),
    (b'{"ts": "2026-01-01T00:00:00Z", "v": 1}\n{"ts": "2026-01-01T00:00:01Z", "v": "one"}\n',
     "field 'v' has values of different types (integer, string)"),
    (b'{"ts": "2026-01-01T00:00:00Z", "tags": ["a"]}\n', "field 'tags' holds lists"),
    (b'{"ts": "2026-01-01T00:00:00", "v": 1}\n', "no field holds a timestamp"),   # no offset: a string
    (b'{"ts": "2026-01-01T00:00:00Z", "Temp C": 1}\n', "field name 'Temp C' cannot be a contract field"),
])
def test_sample_errors_say_what_and_where(tmp_path, lines, message):
    path = tmp_path / "sample.jsonl"
    if lines is not None:
        path.write_bytes(lines)
    with pytest.raises(ContractError) as caught:
        infer_contract(path, "sample")
    assert message in caught.value.message and caught.value.hint


def test_entity_is_a_required_string_preferring_the_larger_enum():
    def contract(**fields):
        return Contract(name="x", event_time="ts", event_id="id", fields={
            "id": {"type": "string", "required": True}, "ts": {"type": "timestamp", "required": True}, **fields})

    picked = choose(contract(status={"type": "string", "required": True, "enum": ["ok", "bad"]},
                             device={"type": "string", "required": True, "enum": ["a", "b", "c"]},
                             note={"type": "string"}, level={"type": "int64"}, temp={"type": "float64", "required": True}))
    assert (picked.entity, picked.event_time, picked.measures) == ("device", "ts", ("temp", "level"))
    assert choose(contract(site={"type": "string", "required": True})).entity == "site"
    with pytest.raises(ContractError, match="no required string field to group by"):
        choose(contract(note={"type": "string"}))


def test_fields_named_like_sql_keywords_or_the_starters_columns_are_not_chosen():
    """The starter's SQL names its fields bare: `order`, `at` or `day` would break it."""
    fields = {"id": {"type": "string", "required": True}, "ts": {"type": "timestamp", "required": True},
              "order": {"type": "string", "required": True}, "day": {"type": "string", "required": True},
              "site": {"type": "string", "required": True}, "at": {"type": "float64"}, "temp": {"type": "float64"}}
    picked = choose(Contract(name="x", event_time="ts", event_id="id", fields=fields))
    assert (picked.entity, picked.measures) == ("site", ("temp",))
    with pytest.raises(ContractError, match="event time field 'at' is a SQL keyword"):
        choose(Contract(name="x", event_time="at", event_id="id", fields={
            "id": {"type": "string", "required": True}, "at": {"type": "timestamp", "required": True},
            "site": {"type": "string", "required": True}}))


def test_init_from_a_sample_writes_a_workspace_whose_files_load(tmp_path):
    from lakebook.jobs import load_jobs
    from lakebook.monitor import load_checks
    from lakebook.transform import discover

    sample = write_sample(tmp_path / "greenhouse.jsonl", [greenhouse(i) for i in range(48)])
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "gh"), "--from", str(sample)], obj={})
    assert result.exit_code == 0, result.output
    assert "source greenhouse, entity device, event time ts, aggregates of temp_c, humidity" in result.output

    root = tmp_path / "gh"
    ws = Workspace.load(root)
    assert ws.settings.name == "gh" and list(ws.contracts()) == ["greenhouse"]
    assert ws.settings.features.online_store.type == "sqlite" and ws.settings.features.offline_store.type == "duckdb"
    transform = discover(ws.transforms_dir)["warehouse.greenhouse_daily"]
    assert (transform.qualified_name, transform.inputs, transform.event_time) == (
        "warehouse.greenhouse_daily", ["raw.greenhouse"], "event_timestamp")
    jobs = load_jobs(ws, strict=True)
    job = jobs.job("greenhouse_explore")
    assert job.definition.schedule is None and job.definition.parameters == {"days": 7}
    checks = load_checks(ws, strict=True).checks
    assert "greenhouse.yaml" in checks["freshness_raw_greenhouse"].origin
    assert not checks["freshness_warehouse_greenhouse_daily"].enabled
    compile((root / "feature_repo" / "definitions.py").read_text(), "definitions.py", "exec")
    for name in ("01_explore.ipynb", "02_train.ipynb", "10_greenhouse_dashboard.ipynb"):
        nbformat.validate(nbformat.read(root / "notebooks" / name, as_version=4))
    for path in root.rglob("*"):
        if path.is_file():
            assert "{{" not in path.read_text(), f"{path} has a placeholder left"
    assert (root / ".gitignore").read_text().splitlines() == [".lakebook/", ".ipynb_checkpoints/"]
    assert "curl -s localhost:8787/v1/events/greenhouse" in (root / "README.md").read_text()


def test_init_without_a_sample_uses_the_example_contract(tmp_path):
    made = init_workspace(tmp_path / "My Lake-2", source="meters")
    ws = Workspace.load(made.root)
    assert list(ws.contracts()) == ["meters"] and made.inferred_from is None
    assert (made.choices.entity, made.choices.measures) == ("device", ("value",))
    assert ws.settings.name == "my_lake_2"          # Feast's project name: letters, digits and _
    assert "project: my_lake_2" in (made.root / "feature_repo" / "feature_store.yaml").read_text()


def test_init_refuses_an_existing_workspace_and_writes_nothing_over_files(tmp_path):
    init_workspace(tmp_path / "ws")
    with pytest.raises(LakebookError, match="lakebook.yaml already exists"):
        init_workspace(tmp_path / "ws", source="other")

    partial = tmp_path / "partial"
    (partial / "notebooks").mkdir(parents=True)
    (partial / "notebooks" / "01_explore.ipynb").write_text("mine")
    (partial / ".gitignore").write_text("*.pyc\n")
    with pytest.raises(LakebookError, match="already has notebooks/01_explore.ipynb") as caught:
        init_workspace(partial)
    assert caught.value.hint
    assert sorted(p.name for p in partial.rglob("*")) == [".gitignore", "01_explore.ipynb", "notebooks"]
    assert (partial / "notebooks" / "01_explore.ipynb").read_text() == "mine"

    with pytest.raises(LakebookError, match="source name 'Bad-Name' is not valid"):
        init_workspace(tmp_path / "new", source="Bad-Name")
    assert not (tmp_path / "new").exists()


def test_init_keeps_an_existing_gitignore(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / ".gitignore").write_text("*.pyc\n.lakebook/\n")
    init_workspace(tmp_path / "ws")
    assert (tmp_path / "ws" / ".gitignore").read_text() == "*.pyc\n.lakebook/\n.ipynb_checkpoints/\n"


def test_the_cli_reports_a_bad_sample_as_one_error(tmp_path):
    (tmp_path / "s.jsonl").write_text(json.dumps({"ts": "2026-01-01T00:00:00Z"}) + "\n{nope\n")
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "ws"), "--from", str(tmp_path / "s.jsonl")], obj={})
    assert result.exit_code != 0 and isinstance(result.exception, ContractError)
    assert "line 2: not valid JSON" in str(result.exception)
    assert not (tmp_path / "ws").exists()


def test_the_source_is_named_after_the_sample_when_it_can_be(tmp_path):
    events = [greenhouse(i) for i in range(3)]
    assert init_workspace(tmp_path / "a", sample=write_sample(tmp_path / "readings.jsonl", events)).source == "readings"
    assert init_workspace(tmp_path / "b", sample=write_sample(tmp_path / "My-Readings.jsonl", events)).source == "events"
    made = init_workspace(tmp_path / "c", source="sensors", sample=write_sample(tmp_path / "x.jsonl", events))
    assert made.source == "sensors" and made.inferred_from == 3
    assert parse_contract(tmp_path / "c" / "contracts" / "sensors.yaml").name == "sensors"
