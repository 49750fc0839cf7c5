"""Where the lake's files live: a local folder (the default) or an S3-compatible bucket
(``lake.root: s3://bucket/prefix``).

A local lake is a folder and every lake path is a ``pathlib.Path``, as always. An S3 lake's
paths are ``S3Path`` objects: pure paths whose ``str`` is their ``s3://bucket/key`` URI, built
with ``/`` like any other path, so the lake's layout holds for both. An ``S3Path`` has no
local filesystem behind it: ``open``/``os.stat`` on one raise ``NotOnS3Lake`` instead of
reading or writing a local file of the same name.

The bucket is reached through pyarrow's S3 filesystem. The endpoint, region and credentials
come from the environment the way every AWS SDK reads them, never from lakebook.yaml:
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (an S3-compatible server), ``AWS_REGION`` or
``AWS_DEFAULT_REGION``, and the credentials of the default chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_SHARED_CREDENTIALS_FILE`` and
``AWS_PROFILE``, an instance role).

S3 has no rename: a lake file is written once under a key that is unique to what it holds
(a flush's ingest-log range, a transform run's version folder) and then committed in the
catalog; readers read the files the catalog lists, never a listing of the bucket.
"""

from __future__ import annotations

import threading
from pathlib import Path, PurePosixPath
from typing import Mapping

from ..config import S3Options, parse_lake_root as parse_root  # noqa: F401 - re-exported
from ..errors import LakeUnavailable, NotOnS3Lake

SCHEME = "s3://"


class S3Path(PurePosixPath):
    """A path in an S3 lake: ``/bucket/key`` inside, ``s3://bucket/key`` as text."""

    __slots__ = ()

    def __new__(cls, *args):
        return super().__new__(cls, *(_from_uri(a) for a in args))

    @property
    def bucket(self) -> str:
        return self.parts[1] if self.is_absolute() and len(self.parts) > 1 else ""

    @property
    def key(self) -> str:
        """The object key (no bucket, no leading slash)."""
        return "/".join(self.parts[2:])

    @property
    def fs_path(self) -> str:
        """``bucket/key``, as pyarrow's S3 filesystem names it."""
        return "/".join(self.parts[1:])

    def __str__(self) -> str:
        text = super().__str__()
        return "s3:/" + text if self.is_absolute() else text

    def __repr__(self) -> str:
        return f"S3Path({str(self)!r})"

    def __fspath__(self) -> str:
        raise NotOnS3Lake(f"{self} is in an S3 lake: this operation needs a local lake folder",
                          hint="it is not supported on an S3 lake yet (README: \"The lake on S3-compatible storage\")")


def _from_uri(part):
    if isinstance(part, str) and part.startswith(SCHEME):
        return "/" + part[len(SCHEME):]
    return part


def is_s3(path) -> bool:
    """Whether a lake path (a Path, an S3Path or a path as text) is in an S3 lake."""
    return isinstance(path, S3Path) or (isinstance(path, str) and path.startswith(SCHEME))


def as_lake_path(path) -> Path | S3Path:
    """A lake path from its text (``s3://…`` or a local path)."""
    if isinstance(path, (Path, S3Path)):
        return path
    return S3Path(path) if str(path).startswith(SCHEME) else Path(path)


_lock = threading.Lock()
_filesystems: dict[tuple, object] = {}  # (bucket, S3Options) -> pyarrow S3FileSystem


def s3_filesystem(root: S3Path, environ: Mapping[str, str] | None = None):
    """The pyarrow filesystem of ``root``'s bucket (one per bucket per process, checked on
    first use: the bucket must exist and answer)."""
    options = S3Options.from_env(environ)
    key = (root.bucket, options)
    with _lock:
        fs = _filesystems.get(key)
        if fs is None:
            fs = _make_filesystem(options)
            check_bucket(fs, root.bucket, options)
            _filesystems[key] = fs
    return fs


def _make_filesystem(options: S3Options):
    import pyarrow.fs as pafs

    # allow_delayed_open: a small object is sent in one PutObject when closed, not as a multipart upload
    kwargs = {"connect_timeout": 5, "request_timeout": 30, "allow_delayed_open": True,
              "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3)}
    if options.endpoint:
        kwargs["endpoint_override"] = options.endpoint
    if options.region:
        kwargs["region"] = options.region
    return pafs.S3FileSystem(**kwargs)


def check_bucket(fs, bucket: str, options: S3Options) -> None:
    """LakeUnavailable, in words a user can act on, when the bucket is missing, the endpoint
    does not answer or access is denied (the message names the endpoint, never a credential)."""
    import pyarrow.fs as pafs

    try:
        info = fs.get_file_info(bucket)
    except OSError as exc:
        raise s3_error(exc, bucket, options) from None
    if info.type == pafs.FileType.NotFound:
        raise LakeUnavailable(f"the lake's bucket {bucket!r} does not exist at {options.shown_endpoint}",
                              hint="create it, or correct lake.root / AWS_ENDPOINT_URL")


def s3_error(exc: OSError, bucket: str, options: S3Options) -> LakeUnavailable:
    text = str(exc)
    if "ACCESS_DENIED" in text or "AccessDenied" in text or "403" in text or "InvalidAccessKeyId" in text \
            or "SignatureDoesNotMatch" in text:
        return LakeUnavailable(f"access to the lake's bucket {bucket!r} at {options.shown_endpoint} was denied",
                               hint="check the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
                                    "AWS_PROFILE or AWS_SHARED_CREDENTIALS_FILE")
    if "NETWORK_CONNECTION" in text or "connect" in text.lower() or "resolve" in text.lower():
        return LakeUnavailable(f"the S3 endpoint {options.shown_endpoint} does not answer (bucket {bucket!r})",
                               hint="is the object store running? check AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3)")
    reason = text.splitlines()[0][:300] if text else type(exc).__name__
    return LakeUnavailable(f"cannot use the lake's bucket {bucket!r} at {options.shown_endpoint}: {reason}",
                           hint="check lake.root, AWS_ENDPOINT_URL and the credentials in the environment")


def filesystem_of(path: S3Path):
    """The pyarrow filesystem of an S3 lake path."""
    return s3_filesystem(path if isinstance(path, S3Path) else S3Path(str(path)))


def require_local(path, what: str) -> None:
    """NotOnS3Lake when ``path`` is in an S3 lake: ``what`` (e.g. "compaction") needs a local lake."""
    if is_s3(path):
        raise NotOnS3Lake(f"{what} is not supported on an S3 lake yet (lake.root is {_root_shown(path)})",
                          hint="README, \"The lake on S3-compatible storage\", lists what works on S3")


def _root_shown(path) -> str:
    path = as_lake_path(str(path))
    return f"s3://{path.bucket}/…" if isinstance(path, S3Path) else str(path)


# -- reading and writing objects -------------------------------------------------------------

def size_or_none(path: S3Path) -> int | None:
    """The size of the object ``path``; None when there is none."""
    import pyarrow.fs as pafs

    info = filesystem_of(path).get_file_info(path.fs_path)
    return None if info.type == pafs.FileType.NotFound else info.size


def write_parquet(table, path: S3Path, compression: str = "zstd") -> None:
    """``table`` as the object ``path``: one PUT (or a completed multipart upload), which S3
    makes visible whole or not at all, so no temporary name is needed."""
    import pyarrow.parquet as pq

    pq.write_table(table, path.fs_path, filesystem=filesystem_of(path),
                   compression=None if compression == "none" else compression,
                   coerce_timestamps="us", allow_truncated_timestamps=False)


def read_metadata(path: S3Path):
    import pyarrow.parquet as pq

    fs = filesystem_of(path)
    with fs.open_input_file(path.fs_path) as fh:
        return pq.read_metadata(fh)


def duckdb_filesystem(root: S3Path, protocol: str = "s3"):
    """An fsspec filesystem over the bucket's pyarrow filesystem, for
    ``duckdb.register_filesystem``: DuckDB then reads and writes ``<protocol>://`` paths through it."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    scheme = f"{protocol}://"

    class LakeS3(ArrowFSWrapper):
        """A lake file's size and time are asked of S3 once per process, not at every query:
        DuckDB checks each listed path (exists), its size and its modification time before it
        opens it, each a HEAD request of its own. A Parquet key of the lake is written once and
        never rewritten (module docstring), so what S3 answered for it stays true."""

        @classmethod
        def _strip_protocol(cls, path):
            path = path[len(scheme):] if path.startswith(scheme) else path
            return path.rstrip("/")

        def _known(self, path: str):
            path = self._strip_protocol(path)
            found = _file_infos.get(path) if path.endswith(".parquet") else None
            if found is None:
                [found] = self.fs.get_file_info([path])
                if path.endswith(".parquet") and found.is_file:
                    _remember_info(path, found)
            return found

        def info(self, path, **kwargs):
            return self._make_entry(self._known(path))

        def modified(self, path):
            return self._known(path).mtime

    LakeS3.protocol = protocol
    return LakeS3(s3_filesystem(root))


_file_infos: dict = {}  # bucket/key of a lake Parquet file -> pyarrow FileInfo (S3's answer), newest last
_FILE_INFOS_KEPT = 200_000


def _remember_info(path: str, info) -> None:
    with _lock:
        _file_infos[path] = info
        if len(_file_infos) > _FILE_INFOS_KEPT:
            for old in list(_file_infos)[: _FILE_INFOS_KEPT // 10]:
                del _file_infos[old]


def register_with_duckdb(con, root) -> None:
    """Let a DuckDB connection read the lake when it is on S3 (nothing to do for a local lake)."""
    if isinstance(root, S3Path):
        con.register_filesystem(duckdb_filesystem(root))


# ibis loads DuckDB's httpfs extension (downloading it) for any s3:// path it is given, and
# httpfs knows neither the lake's endpoint nor its credentials: Feast's DuckDB offline store,
# which reads through ibis, is given the lake's files under a scheme of lakebook's own instead.
IBIS_PROTOCOL = "lakebook-s3"
_ibis_options: list = []  # the S3Options whose filesystem ibis's DuckDB connection has


def ibis_uri(path) -> str:
    """An S3 lake path (or glob) as ibis's DuckDB backend reads it: ``lakebook-s3://bucket/key``."""
    return f"{IBIS_PROTOCOL}://{str(path)[len(SCHEME):]}"


def from_ibis_uri(text: str) -> str:
    """The ``s3://`` path of an ``ibis_uri`` (any other text unchanged)."""
    prefix = f"{IBIS_PROTOCOL}://"
    return SCHEME + text[len(prefix):] if text.startswith(prefix) else text


def register_with_ibis(root) -> None:
    """Let ibis's default DuckDB backend (the one Feast's DuckDB offline store reads a
    FileSource through, with ``ibis.read_parquet``) read ``ibis_uri`` paths of the lake when it
    is on S3. DuckDB keeps one filesystem per protocol: one set up from another environment is
    replaced."""
    if not isinstance(root, S3Path):
        return
    import ibis

    fs = duckdb_filesystem(root, IBIS_PROTOCOL)  # checks the bucket
    options = S3Options.from_env()
    with _lock:
        if _ibis_options == [options]:
            return
        con = ibis.get_backend().con
        if IBIS_PROTOCOL in con.list_filesystems():
            con.unregister_filesystem(IBIS_PROTOCOL)
        con.register_filesystem(fs)
        _ibis_options[:] = [options]


def read_schema(path: S3Path):
    return read_metadata(path).schema.to_arrow_schema()


def _info(folder: S3Path, recursive: bool):
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(folder.fs_path, recursive=recursive, allow_not_found=True)
    return filesystem_of(folder).get_file_info(selector)


def list_files(folder: S3Path, suffix: str = ".parquet") -> list[S3Path]:
    """The objects under ``folder`` whose name ends with ``suffix`` (a listing: for clean-up
    and checks only; readers follow the catalog)."""
    import pyarrow.fs as pafs

    return sorted(S3Path("/" + i.path) for i in _info(folder, True)
                  if i.type == pafs.FileType.File and i.base_name.endswith(suffix))


def list_dirs(folder: S3Path) -> list[S3Path]:
    """The "folders" (common prefixes) right under ``folder``."""
    import pyarrow.fs as pafs

    return sorted(S3Path("/" + i.path) for i in _info(folder, False) if i.type == pafs.FileType.Directory)


def delete_dir(folder: S3Path) -> None:
    """Delete every object under ``folder`` (nothing when there is none)."""
    fs = filesystem_of(folder)
    try:
        fs.delete_dir_contents(folder.fs_path, missing_dir_ok=True)
    except FileNotFoundError:
        pass


def delete_file(path: S3Path) -> None:
    try:
        filesystem_of(path).delete_file(path.fs_path)
    except FileNotFoundError:
        pass


def modified(path: S3Path):
    """When the object ``path`` was written (UTC)."""
    return _utc(filesystem_of(path).get_file_info(path.fs_path).mtime)


def _utc(mtime):
    from datetime import timezone

    return mtime.astimezone(timezone.utc) if mtime.tzinfo else mtime.replace(tzinfo=timezone.utc)


def upload(local: Path, path: S3Path) -> None:
    """A local file as the object ``path`` (one PUT for a file below pyarrow's part size)."""
    import shutil

    with open(local, "rb") as source, filesystem_of(path).open_output_stream(path.fs_path) as target:
        shutil.copyfileobj(source, target, 8 << 20)


class LocalCopies:
    """Local copies of an S3 lake's files, for an engine that reads only local paths (Spark
    without s3a://): ``<root>/<bucket>/<key>``. A lake file is never rewritten with other
    content (its key is unique to what it holds), so a copy, once whole, stays valid."""

    def __init__(self, root: Path):
        self.root = root

    def path_of(self, path) -> Path:
        path = as_lake_path(str(path))
        return self.root / path.bucket / path.key

    def fetch(self, path) -> Path:
        """The local copy of ``path``, downloaded unless it is there already (written under a
        temporary name and renamed: a copy cut short is never taken for a whole one)."""
        import shutil

        local = self.path_of(path)
        if local.exists():
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.download")
        source = as_lake_path(str(path))
        with filesystem_of(source).open_input_stream(source.fs_path) as stream, open(tmp, "wb") as out:
            shutil.copyfileobj(stream, out, 8 << 20)
        tmp.replace(local)
        return local

    def staging(self, label: str) -> Path:
        """A local folder for output that is uploaded once written (emptied first)."""
        import shutil

        folder = self.root / "_staging" / label
        shutil.rmtree(folder, ignore_errors=True)
        return folder


# -- single objects (blobs and their metadata) -------------------------------------------------

def exists(path: S3Path) -> bool:
    """Whether the object ``path`` exists."""
    return size_or_none(path) is not None


def read_bytes(path: S3Path) -> bytes:
    """The content of the object ``path`` (FileNotFoundError when there is none)."""
    fs = filesystem_of(path)
    if size_or_none(path) is None:
        raise FileNotFoundError(str(path))
    with fs.open_input_stream(path.fs_path) as stream:
        return stream.readall()


def write_bytes(data: bytes, path: S3Path) -> None:
    """``data`` as the object ``path``: one PUT (a multipart upload for a large one), which S3
    shows whole or not at all."""
    with filesystem_of(path).open_output_stream(path.fs_path) as target:
        target.write(data)


def list_names(folder: S3Path) -> list[str]:
    """The names of the objects right under ``folder`` (not those of its "sub-folders")."""
    import pyarrow.fs as pafs

    return sorted(i.base_name for i in _info(folder, False) if i.type == pafs.FileType.File)


def read_table(path, **kwargs):
    """A Parquet file of the lake, local or on S3 (``kwargs`` as ``pyarrow.parquet.read_table``'s)."""
    import pyarrow.parquet as pq

    if is_s3(path):
        path = as_lake_path(str(path))
        return pq.read_table(path.fs_path, filesystem=filesystem_of(path), **kwargs)
    return pq.read_table(path, **kwargs)


# -- lake maintenance (compaction, vacuum) on S3 ---------------------------------------------

def list_sizes(folder: S3Path, suffix: str = "") -> dict[S3Path, int]:
    """{object: size} of the objects under ``folder`` whose name ends with ``suffix`` (one listing)."""
    import pyarrow.fs as pafs

    return {S3Path("/" + i.path): i.size for i in _info(folder, True)
            if i.type == pafs.FileType.File and i.base_name.endswith(suffix)}


def list_modified(folder: S3Path, suffix: str = ".parquet") -> dict[S3Path, object]:
    """{object: when it was written (UTC)} of the objects under ``folder`` whose name ends with
    ``suffix`` (one listing)."""
    import pyarrow.fs as pafs

    return {S3Path("/" + i.path): _utc(i.mtime) for i in _info(folder, True)
            if i.type == pafs.FileType.File and i.base_name.endswith(suffix)}


def read_tables(paths: list[S3Path]):
    """The rows of the Parquet objects ``paths``, in order, as one Arrow table (one scan, the
    files read in parallel; no partition column from the key names)."""
    import pyarrow.dataset as ds

    fs = filesystem_of(paths[0])
    return ds.dataset([p.fs_path for p in paths], format="parquet", filesystem=fs, partitioning=None).to_table()


def remove_dir(folder: S3Path) -> None:
    """Delete every object under ``folder`` and the folder itself: unlike ``delete_dir``, no
    empty directory marker of it is left for a later listing to find (nothing when there is none)."""
    try:
        filesystem_of(folder).delete_dir(folder.fs_path)
    except FileNotFoundError:
        pass
