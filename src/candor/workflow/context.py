"""The workflow's working set: one open workspace, one face engine, one gallery index.

Every verb in this package takes a `Workflow`. The face engine and the index are made
on first use, so commands that never compare faces (listing subjects, say) load no
model. The index lives in the workspace (index/<model>/, see candor.index.gallery): it
is opened, checked against the store's template ids (templates enrolled or removed by
another process are added or dropped) and then kept in step with every enrolment and
expungement made through the same `Workflow`. While another Workflow holds the folder,
this one builds an in-memory index from the store, as before the index was persisted.

Every time the workflow records (a request's creation, a run, an approval, an audit
entry, a login's expiry, whether a certificate is still valid) comes from the
workflow's clock, the system clock unless a caller gives another. A simulation gives a
clock that walks through weeks of activity in minutes; real use never sets one.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from candor.faces import EngineSettings, FaceEngine, ModelId
from candor.faces.recipe import DEFAULT_RECIPE, Recipe
from candor.index import GalleryIndex, IndexFolderBusyError, IndexFolderError
from candor.index.cohort import COHORT_SIZE, CohortNormaliser, gallery_cohort_ids, score_name
from candor.store import FaceTemplate, Workspace, templates_for_model

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
        recipe: Recipe = DEFAULT_RECIPE,
    ) -> None:
        """clock: where recorded times come from (timezone-aware; default the system's).
        checkpoint_schedule: when audit checkpoints are made without being asked
            (default: CheckpointSchedule.from_environment() at each entry).
        recipe: how templates are made and scores judged (`candor.faces.recipe`); its
            detector fallback replaces the settings' own.
        """
        self.workspace = workspace
        self.recipe = recipe
        self.settings = replace(settings or EngineSettings(), fallback=recipe.fallback)
        self.clock = clock
        self.checkpoint_schedule = checkpoint_schedule
        self.probe_cache = ProbeCache()
        self._engine: FaceEngine | None = None
        self._index: GalleryIndex | None = None
        self._cohort: tuple[tuple[int, int], CohortNormaliser] | None = None

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
        """Whether the index has been opened in this process (and so must be kept in step)."""
        return self._index is not None

    @property
    def index(self) -> GalleryIndex:
        """Every template of the engine's model in the store, ready to search."""
        if self._index is None:
            self._index = self._open_index()
        return self._index

    @property
    def score_in_use(self) -> str:
        """What a search's threshold applies to now: "cosine", or the normalised score.

        The recipe's normalised score once the gallery holds COHORT_SIZE templates (see
        `cohort_normaliser`); the cosine before that, or when the recipe does not normalise.
        """
        k = self.recipe.cohort_k
        return "cosine" if k is None or len(self.index) < COHORT_SIZE else score_name(k)

    def cohort_normaliser(self) -> CohortNormaliser | None:
        """What scores are judged against, or None when searches score plain cosines.

        None when the recipe does not normalise, and when the gallery holds fewer than
        COHORT_SIZE templates (a smaller cohort would shift every score, and the
        calibrated thresholds assume that size). Otherwise the cohort is the gallery's own
        fixed sample (`gallery_cohort_ids`), remade after the index changes.
        """
        k = self.recipe.cohort_k
        index = self.index
        if k is None or self.score_in_use == "cosine":
            return None
        key = (id(index), index.changes)
        if self._cohort is None or self._cohort[0] != key:
            members = gallery_cohort_ids(index.ids)
            self._cohort = (key, CohortNormaliser(index.vectors_of(members), k))
        return self._cohort[1]

    def index_folder(self, model: ModelId) -> Path:
        """Where the workspace keeps the index of one model's templates."""
        return self.workspace.home / "index" / re.sub(r"[^A-Za-z0-9._-]", "_", model.key)

    def forget_templates(self, template_ids: Iterable[int]) -> None:
        """Drop templates from this Workflow's index and from every index folder on disk.

        For removals already committed to the store (expungement, retention): a folder
        another Workflow holds is scrubbed in place, so no index file keeps the vectors.
        """
        ids = list(template_ids)
        held = self._index.folder if self._index is not None else None
        if self._index is not None:
            self._index.remove(ids)
        root = self.workspace.home / "index"
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if folder.is_dir() and folder != held:
                    GalleryIndex.scrub(folder, ids)

    def _open_index(self) -> GalleryIndex:
        model = self.engine.model
        folder = self.index_folder(model)
        try:
            index = GalleryIndex.open(folder, model)
        except IndexFolderBusyError:
            index = GalleryIndex(model)
        except IndexFolderError:
            # A derived cache: damaged or foreign files are erased and rebuilt from the store.
            GalleryIndex.erase_folder(folder)
            index = GalleryIndex(model, folder)
        self._reconcile(index)
        return index

    def _reconcile(self, index: GalleryIndex) -> None:
        """Bring the index to exactly the store's templates of its model."""
        model_key = index.model.key
        with self.workspace.session() as session:
            stored = set(
                session.scalars(select(FaceTemplate.id).where(FaceTemplate.model_key == model_key))
            )
        held = set(index.ids.tolist())
        if held - stored:
            index.remove(held - stored)
        missing = stored - held
        if not missing:
            return
        ids: list[int] = []
        vectors: list[np.ndarray] = []
        with self.workspace.session() as session:
            rows = templates_for_model(session, model_key, self.workspace.vault)
            for template_id, _subject_id, _image_id, vector in rows:
                if template_id not in missing:
                    continue
                ids.append(template_id)
                vectors.append(vector)
                if len(ids) >= _REBUILD_BATCH:
                    index.add(ids, np.stack(vectors))
                    ids, vectors = [], []
        if ids:
            index.add(ids, np.stack(vectors))
        index.flush()

    def close(self) -> None:
        """Write the index's pending changes, let go of its folder, close the database."""
        if self._index is not None:
            self._index.close()
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
