"""The lake: raw-zone layout and atomic Parquet writers."""

from .writer import WrittenFile, write_date_partitions, write_parquet_atomic

__all__ = ["WrittenFile", "write_date_partitions", "write_parquet_atomic"]
