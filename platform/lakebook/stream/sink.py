"""The Feast push sink: the stream's online rows into the online store.

One ``store.push(push_source, rows, to=PushMode.ONLINE)`` per micro-batch and push source,
with each entity's newest row. Never ``ONLINE_AND_OFFLINE``: the views' offline sources are
lake tables the batch layer publishes, which an offline push would rewrite. The store keeps
the newest value per entity whichever layer writes it (features/newest_wins.py). The
registry is read again when ``lakebook features apply`` has changed it since.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pyarrow as pa

from ..errors import FeatureStoreError
from ..features import feature_store
from ..features.newest_wins import keep_newest

log = logging.getLogger("lakebook.stream")


class PushSink:
    def __init__(self, workspace):
        self.store = feature_store(workspace)
        self._registry = Path(self.store.config.registry.path)
        self._seen = self._registry_mtime()
        self._sources: dict[str, str] = {}
        keep_newest(self.store)

    def _registry_mtime(self) -> float:
        try:
            return self._registry.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _follow_apply(self) -> None:
        changed = self._registry_mtime()
        if changed != self._seen:
            self.store.refresh_registry()
            keep_newest(self.store)
            self._sources.clear()
            self._seen = changed

    def push_source(self, view: str) -> str:
        """The push source feeding ``view``, from the registry."""
        if view not in self._sources:
            try:
                found = self.store.get_feature_view(view)
            except Exception:
                raise FeatureStoreError(f"the stream computes {view}, but the feature store has no view {view}",
                                        hint="declare it in feature_repo/ and run 'lakebook features apply'") from None
            source = getattr(found, "stream_source", None)
            if source is None or type(source).__name__ != "PushSource":
                raise FeatureStoreError(f"feature view {view} has no push source",
                                        hint="give it source=PushSource(...) in feature_repo/ (see origin_delays_push)")
            self._sources[view] = source.name
        return self._sources[view]

    def push(self, rows: dict[str, pa.Table]) -> dict[str, float]:
        """Push each view's rows; when each push finished (Unix time), by view."""
        from feast.data_source import PushMode

        self._follow_apply()
        done = {}
        for view, table in rows.items():
            if table is None or not table.num_rows:
                continue
            self.store.push(self.push_source(view), table.to_pandas(), to=PushMode.ONLINE)
            done[view] = time.time()
        return done
