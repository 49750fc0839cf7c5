"""The lake's store: ``lake.root`` as a local folder or ``s3://bucket/prefix``, S3 lake paths,
where the endpoint and credentials come from (the environment, never lakebook.yaml), and the
refusals of what needs a local lake folder. No S3 server here (tests/integration/test_s3_lake.py
has one)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lakebook.config import S3Options, load_settings, parse_lake_root
from lakebook.errors import ConfigError, NotOnS3Lake
from lakebook.lake.store import S3Path, as_lake_path, from_ibis_uri, ibis_uri, is_s3, require_local
from lakebook.workspace import Workspace


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lakebook.yaml"
    path.write_text(text)
    return path


def test_an_s3_root_parses_to_bucket_and_prefix():
    assert parse_lake_root("s3://lake-bucket/some/prefix/") == ("lake-bucket", "some/prefix")
    assert parse_lake_root("s3://lake-bucket") == ("lake-bucket", "")
    assert parse_lake_root("lake") is None and parse_lake_root("/abs/lake") is None


@pytest.mark.parametrize("root, says", [
    ("gs://bucket/lake", "gs:// is not supported"),
    ("s3:///lake", "needs a bucket"),
    ("s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/lake", "credentials in the URL"),
])
def test_an_unusable_s3_root_is_a_config_error_at_load(tmp_path, root, says):
    with pytest.raises(ConfigError, match=says) as info:
        load_settings(write(tmp_path, f"lake:\n  root: {root}\n"), environ={})
    assert "wJalrXUtnFEMI" not in str(info.value) and "AKIAEXAMPLE" not in str(info.value)


@pytest.mark.parametrize("key", ["aws_access_key_id", "aws_secret_access_key", "secret_key", "endpoint_url", "profile"])
def test_s3_credentials_in_lakebook_yaml_are_refused_pointing_to_the_environment(tmp_path, key):
    path = write(tmp_path, f"lake:\n  root: s3://bucket/lake\n  {key}: sekrit-value-123\n")
    with pytest.raises(ConfigError, match=f"lake.{key} must not be written") as info:
        load_settings(path, environ={})
    assert "AWS_ACCESS_KEY_ID" in info.value.hint and "AWS_ENDPOINT_URL" in info.value.hint
    assert "sekrit-value-123" not in str(info.value)


def test_endpoint_and_region_come_from_the_environment_in_the_sdks_order():
    options = S3Options.from_env({"AWS_ENDPOINT_URL": "http://general:9000", "AWS_ENDPOINT_URL_S3": "http://s3only:9000",
                                  "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-central-1"})
    assert options == S3Options("http://s3only:9000", "eu-central-1")
    assert S3Options.from_env({"AWS_ENDPOINT_URL": "http://general:9000", "AWS_DEFAULT_REGION": "eu-west-1"}) == \
        S3Options("http://general:9000", "eu-west-1")
    nothing = S3Options.from_env({})
    assert nothing == S3Options(None, None) and "AWS_ENDPOINT_URL" in nothing.shown_endpoint


def test_s3_paths_are_built_like_local_ones_and_print_as_uris():
    root = S3Path("s3://bucket/lake")
    path = root / "raw" / "flights" / "date=2013-01-01" / "part-1.parquet"
    assert str(path) == "s3://bucket/lake/raw/flights/date=2013-01-01/part-1.parquet"
    assert (path.bucket, path.key) == ("bucket", "lake/raw/flights/date=2013-01-01/part-1.parquet")
    assert path.fs_path == "bucket/lake/raw/flights/date=2013-01-01/part-1.parquet"
    assert isinstance(path.parent, S3Path) and str(path.parent).endswith("date=2013-01-01")
    assert path.relative_to(root).as_posix() == "raw/flights/date=2013-01-01/part-1.parquet"
    assert S3Path(str(path)) == path and pickle.loads(pickle.dumps(path)) == path
    assert as_lake_path(str(path)) == path and as_lake_path("/local/lake") == Path("/local/lake")
    assert is_s3(path) and is_s3(str(path)) and not is_s3(Path("/local/lake")) and not is_s3("/local/lake")


def test_an_s3_path_is_never_opened_as_a_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = S3Path("s3://bucket/lake/raw/x.parquet")
    with pytest.raises(NotOnS3Lake, match="s3://bucket/lake/raw/x.parquet is in an S3 lake"):
        open(path, "wb")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NotOnS3Lake, match="storing blobs is not supported on an S3 lake yet"):
        require_local(path, "storing blobs")
    require_local(tmp_path, "storing blobs")  # a local lake: nothing to refuse


def test_a_workspace_with_an_s3_root_has_an_s3_lake_and_no_local_lake_folder(tmp_path):
    write(tmp_path, "name: s3\nlake:\n  root: s3://bucket/team/lake\n")
    ws = Workspace.load(tmp_path, environ={})
    assert ws.lake_on_s3 and ws.lake.root == S3Path("s3://bucket/team/lake")
    assert str(ws.lake.table_dir("raw", "flights")) == "s3://bucket/team/lake/raw/flights"
    assert ws.lake.table_of("s3://bucket/team/lake/warehouse/daily/version-000001/run-1.parquet") == ("warehouse", "daily")
    assert ws.lake.table_of("s3://other/lake/raw/flights/x.parquet") is None
    assert ws.lake.stagings("warehouse", "daily") == []
    with pytest.raises(NotOnS3Lake, match="current"):
        ws.lake.current("warehouse", "daily")
    ws.ensure_state()
    assert ws.state_dir.is_dir() and not (ws.state_dir / "lake").exists()
    assert not any(p.name == "bucket" for p in tmp_path.rglob("*"))


def test_a_local_workspace_keeps_its_local_lake(tmp_path):
    write(tmp_path, "name: local\n")
    ws = Workspace.load(tmp_path, environ={})
    assert not ws.lake_on_s3 and ws.lake.root == ws.state_dir / "lake"
    assert ws.lake.current("warehouse", "daily") == ws.state_dir / "lake" / "warehouse" / "daily" / "current"


def test_an_s3_root_with_credentials_from_an_environment_override_is_refused_too(tmp_path):
    with pytest.raises(ConfigError, match="must not hold credentials") as info:
        load_settings(write(tmp_path, "name: x\n"), environ={"LAKEBOOK_LAKE__ROOT": "s3://AKIAEXAMPLE:wJalrXUtnFEMI@b/l"})
    assert "wJalrXUtnFEMI" not in str(info.value)


# -- what needs a local lake folder is refused on an S3 lake, before it touches anything -------
@pytest.fixture
def s3_workspace(tmp_path, monkeypatch):
    write(tmp_path, "name: s3\nlake:\n  root: s3://bucket/lake\n")
    monkeypatch.chdir(tmp_path)
    return Workspace.load(tmp_path, environ={})


# -- compaction and vacuum work on an S3 lake (tests/integration/test_s3_maintenance.py runs
# them against a real S3 server); here, an endpoint nothing answers on shows that the ingest
# service's rounds reach for the bucket instead of refusing
DEAD_ENDPOINT = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "us-east-1",
                 "AWS_ACCESS_KEY_ID": "unit-test", "AWS_SECRET_ACCESS_KEY": "unit-test-secret-value"}


@pytest.fixture
def dead_endpoint(monkeypatch):
    for name, value in DEAD_ENDPOINT.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def s3_raw_table(workspace):
    """A catalog with a raw table in the S3 lake (no file: nothing to compact, but its keys are listed)."""
    from lakebook.catalog import open_catalog

    catalog = open_catalog(workspace)
    catalog.register_table("raw", "flights", kind="raw", location=str(workspace.lake.table_dir("raw", "flights")),
                           columns=[])
    return catalog


def test_the_ingest_services_maintenance_rounds_run_on_an_s3_lake(s3_workspace, dead_endpoint, caplog):
    import threading

    from lakebook.ingest.maintenance import run_compactions, run_vacuums

    s3_raw_table(s3_workspace).close()
    for settings in (s3_workspace.settings.lake.compaction, s3_workspace.settings.lake.retention):
        object.__setattr__(settings, "interval_s", 0.05)  # below the retention setting's minimum (60 s)
    stop = threading.Event()
    rounds = [threading.Thread(target=run_compactions, args=(s3_workspace, None, stop), daemon=True),
              threading.Thread(target=run_vacuums, args=(s3_workspace, stop), daemon=True)]
    wanted = {"lake compaction failed; the next pass tries again", "vacuum failed; the next round tries again"}
    with caplog.at_level("INFO"):
        for thread in rounds:
            thread.start()
        try:
            for _ in range(400):  # a round that cannot reach the bucket is logged, and the next one tries again
                if wanted <= {r.getMessage() for r in caplog.records}:
                    break
                threading.Event().wait(0.05)
        finally:
            stop.set()
            for thread in rounds:
                thread.join(timeout=30)
    messages = {r.getMessage() for r in caplog.records}
    assert wanted <= messages and not any("not supported on an S3 lake" in m for m in messages)
    assert not any(thread.is_alive() for thread in rounds)
    failures = [r.exc_info[1] for r in caplog.records if r.getMessage() in wanted]
    assert {type(e).__name__ for e in failures} == {"LakeUnavailable"}
    assert all("the S3 endpoint http://127.0.0.1:9 does not answer" in str(e) for e in failures)
    assert not any("unit-test-secret-value" in r.getMessage() + (r.exc_text or "") for r in caplog.records)


def test_spark_on_an_s3_lake_is_refused_but_for_staged_transforms_on_a_local_master_or_shared_disks(s3_workspace, tmp_path):
    from lakebook.transform.spark import refuse_s3_lake  # spark_session's first step (tests/integration: the real one)

    with pytest.raises(NotOnS3Lake, match="Spark is not supported on an S3 lake outside transforms") as info:
        refuse_s3_lake(s3_workspace)
    assert "hadoop-aws" in info.value.message and "aws-java-sdk-bundle" in info.value.message
    assert "--engine duckdb" in info.value.hint
    refuse_s3_lake(s3_workspace, staged=True)  # local[*]: the transform engine stages the files
    write(tmp_path, "name: s3\nlake:\n  root: s3://bucket/lake\nbatch:\n  master: spark://10.0.0.5:7077\n")
    on_a_cluster = Workspace.load(tmp_path, environ={})
    with pytest.raises(NotOnS3Lake, match="with a cluster master") as info:
        refuse_s3_lake(on_a_cluster, staged=True)
    assert "hadoop-aws" in info.value.message and "batch.s3_staging: shared" in info.value.hint
    write(tmp_path, "name: s3\nlake:\n  root: s3://bucket/lake\nbatch:\n  master: spark://10.0.0.5:7077\n"
                    "  s3_staging: shared\n")
    shared = Workspace.load(tmp_path, environ={})
    refuse_s3_lake(shared, staged=True)  # the workers see the driver's state dir: staging works
    with pytest.raises(NotOnS3Lake, match="outside transforms"):
        refuse_s3_lake(shared)  # ad-hoc Spark would still need s3a://
    with pytest.raises(ConfigError, match="s3_staging"):
        load_settings(write(tmp_path, "batch:\n  s3_staging: everywhere\n"), environ={})


def test_a_feast_source_on_an_s3_lake_names_the_published_version_and_spark_sources_are_refused(s3_workspace, tmp_path):
    from lakebook.features import store as features

    features._active.append(s3_workspace)
    try:
        source = features.lake_source("warehouse.flights_clean")
    finally:
        features._active.pop()
    # not built yet: a folder that names no file (the source is applied again once it is published),
    # under the scheme ibis reads the lake's filesystem by (an s3:// path would make it load httpfs)
    assert source.path == "lakebook-s3://bucket/lake/warehouse/flights_clean/unpublished/**/*.parquet"
    assert s3_workspace.lake.table_of(from_ibis_uri(source.path)) == ("warehouse", "flights_clean")
    assert from_ibis_uri("s3://bucket/x") == "s3://bucket/x" and ibis_uri("s3://bucket/x") == "lakebook-s3://bucket/x"

    write(tmp_path, "name: s3\nlake:\n  root: s3://bucket/lake\nfeatures:\n  offline_store: {type: spark}\n")
    features._active.append(Workspace.load(tmp_path, environ={}))
    try:
        with pytest.raises(NotOnS3Lake, match="a Feast source over warehouse.flights_clean for the Spark offline"):
            features.lake_source("warehouse.flights_clean")
    finally:
        features._active.pop()


def test_the_stream_is_not_refused_on_an_s3_lake_and_blobs_lock_in_the_state_dir(s3_workspace):
    from lakebook.errors import FeatureStoreError
    from lakebook.ingest.blobs import BlobStore
    from lakebook.stream.job import StreamJob

    with pytest.raises(FeatureStoreError, match="no windowed features to stream"):  # past the lake: it has no views
        StreamJob(s3_workspace)
    blobs = BlobStore.of(s3_workspace)  # stored in the bucket (tests/integration/test_s3_blobs.py)
    assert str(blobs.root) == "s3://bucket/lake/blobs" and blobs.locks == s3_workspace.state_dir / "blobs" / "locks"
    with pytest.raises(ValueError, match="needs a local folder for its locks"):
        BlobStore(s3_workspace.lake.blobs_dir)


def test_doctor_says_it_did_not_check_an_s3_lakes_files(s3_workspace):
    from lakebook.doctor import report_lines, run_doctor

    report = run_doctor(s3_workspace)
    assert report.as_json()["not_checked"].startswith("the lake's files (s3://bucket/lake)")
    assert "not checked: the lake's files (s3://bucket/lake): checking an S3 lake is not supported yet" in \
        report_lines(report, fixing=False)


def test_an_s3_lakes_secret_from_the_environment_is_masked_in_errors(tmp_path):
    from lakebook.errors import LakebookError

    load_settings(write(tmp_path, "lake:\n  root: s3://bucket/lake\n"),
                  environ={"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3-secret-never-shown-42"})
    error = LakebookError("the store said: bad signature for s3-secret-never-shown-42")
    assert "s3-secret-never-shown-42" not in str(error) and "bad signature for" in str(error)


def test_an_alerts_impact_names_the_feature_views_over_an_s3_lakes_tables(s3_workspace, monkeypatch):
    """On an S3 lake a Feast source names its table's published files under ibis's scheme
    (``lakebook-s3://…/version-…/**/*.parquet``); the impact of a failing check still finds it."""
    from types import SimpleNamespace

    from lakebook.features import store as feature_store
    from lakebook.monitor.impact import Impact, _feature_views

    (s3_workspace.feature_repo_dir).mkdir(parents=True, exist_ok=True)
    (s3_workspace.feature_repo_dir / "feature_store.yaml").write_text("project: p\n")
    view = SimpleNamespace(name="origin_delays", batch_source=SimpleNamespace(
        path="lakebook-s3://bucket/lake/features/origin_delays/version-000003/**/*.parquet"))
    other = SimpleNamespace(name="weather_hourly", batch_source=SimpleNamespace(
        path="lakebook-s3://bucket/lake/warehouse/weather_hourly/version-000001/**/*.parquet"))
    service = SimpleNamespace(name="delay_model", feature_view_projections=[SimpleNamespace(name="origin_delays")])
    monkeypatch.setattr(feature_store, "_repo_objects",
                        lambda ws: SimpleNamespace(feature_views=[view, other], feature_services=[service]))
    found = Impact("raw.flights")
    views, services = _feature_views(s3_workspace, {"features.origin_delays"}, found)
    assert views == {"origin_delays"} and services == {"delay_model"}
