"""The workflow's working set: one open workspace, one face engine, one in-memory index.

Every verb in this package takes a `Workflow`. The face engine and the index are made
on first use, so commands that never compare faces (listing subjects, say) load no
model, and the index is rebuilt from the store once per process and then kept in step
with every enrolment and expungement made through the same `Workflow`.

Every time the workflow records (a request's creation, a run, an approval, an audit
entry, a login's expiry, whether a certificate is still valid) comes from the
workflow's clock, the system clock unless a caller gives another. A simulation gives a
clock that walks through weeks of activity in minutes; real use never sets one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from candor.faces import EngineSettings, FaceEngine
from candor.index import TemplateIndex
from candor.store import Workspace, templates_for_model

if TYPE_CHECKING:
    from candor.workflow.audit_trail import CheckpointSchedule
    from candor.workflow.probes import Probe

_REBUILD_BATCH = 50_000
# Probe photos read in this process, by content and face asked for. Small, because it
# only spares re-detecting a photo searched again soon (a rerun after approval, a
# simulation reusing its probes); it holds decoded photos that are also in the vault.
PROBE_CACHE_SIZE = 64

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The present, in UTC: the clock of every real workflow."""
    return datetime.now(UTC)


class ProbeCache:
    """The last PROBE_CACHE_SIZE probes read, keyed by (image sha256, face index asked)."""

    def __init__(self, size: int = PROBE_CACHE_SIZE) -> None:
        self.size = size
        self._probes: OrderedDict[tuple[str, int | None], Probe] = OrderedDict()

    def get(self, sha256: str, face_index: int | None) -> Probe | None:
        """The probe read earlier from these bytes with this face choice, if still held."""
        key = (sha256, face_index)
        probe = self._probes.get(key)
        if probe is not None:
            self._probes.move_to_end(key)
        return probe

    def put(self, sha256: str, face_index: int | None, probe: Probe) -> None:
        """Keep `probe`, dropping the least recently used one when full."""
        self._probes[(sha256, face_index)] = probe
        self._probes.move_to_end((sha256, face_index))
        while len(self._probes) > self.size:
            self._probes.popitem(last=False)

    def __len__(self) -> int:
        return len(self._probes)


class Workflow:
    """Candor's verbs run against this: a workspace plus the face engine and its index."""

    def __init__(
        self,
        workspace: Workspace,
        settings: EngineSettings | None = None,
        *,
        clock: Clock = system_clock,
        checkpoint_schedule: CheckpointSchedule | None = None,
    ) -> None:
        """clock: where recorded times come from (timezone-aware; default the system's).
        checkpoint_schedule: when audit checkpoints are made without being asked
            (default: CheckpointSchedule.from_environment() at each entry).
        """
        self.workspace = workspace
        self.settings = settings or EngineSettings()
        self.clock = clock
        self.checkpoint_schedule = checkpoint_schedule
        self.probe_cache = ProbeCache()
        self._engine: FaceEngine | None = None
        self._index: TemplateIndex | None = None

    def now(self) -> datetime:
        """The clock's time in UTC, as every recorded time is stored."""
        moment = self.clock()
        if moment.tzinfo is None or moment.utcoffset() is None:
            # A naive time would be read as the machine's local time: refuse, not guess.
            raise ValueError("the workflow's clock gave a time without a time zone")
        return moment.astimezone(UTC)

    def today(self) -> date:
        """The clock's date in the workspace's time zone (which defines days)."""
        return self.now().astimezone(self.workspace.zone).date()

    @property
    def engine(self) -> FaceEngine:
        """The face engine (models load on first use of it)."""
        if self._engine is None:
            self._engine = FaceEngine(self.settings)
        return self._engine

    @property
    def index_loaded(self) -> bool:
        """Whether the index has been built in this process (and so must be kept in step)."""
        return self._index is not None

    @property
    def index(self) -> TemplateIndex:
        """Every template of the engine's model in the store, ready to search."""
        if self._index is None:
            self._index = self._rebuild_index()
        return self._index

    def _rebuild_index(self) -> TemplateIndex:
        model = self.engine.model
        index = TemplateIndex(model)
        ids: list[int] = []
        vectors: list[np.ndarray] = []
        with self.workspace.session() as session:
            rows = templates_for_model(session, model.key, self.workspace.vault)
            for template_id, _subject_id, _image_id, vector in rows:
                ids.append(template_id)
                vectors.append(vector)
                if len(ids) >= _REBUILD_BATCH:
                    index.add(ids, np.stack(vectors))
                    ids, vectors = [], []
        if ids:
            index.add(ids, np.stack(vectors))
        return index

    def close(self) -> None:
        """Close the workspace's database connections."""
        self.workspace.close()

    def __enter__(self) -> Workflow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
