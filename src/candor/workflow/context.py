"""The workflow's working set: one open workspace, one face engine, one gallery index.

Every verb in this package takes a `Workflow`. The face engine and the index are made
on first use, so commands that never compare faces (listing subjects, say) load no
model. The index lives in the workspace (index/<model>/, see candor.index.gallery): it
is opened, brought in step with the store, and then kept in step with every enrolment
and expungement made through the same `Workflow`. While another Workflow holds the
folder, this one builds an in-memory index from the store, as before the index was
persisted.

Other processes (a `candor enrol` beside a running server, another server worker)
change the gallery too. The store logs every template added or removed
(candor.store.changes), and the index remembers the last change it reflects (its
`change_seq`, kept in the folder's meta.json, so a restart catches up on what it
missed). Each search calls `index_in_step` in its own transaction: one indexed lookup
of the newest change, and when it moved, the missing changes are applied before the
index is searched. An index folder that records no change (made before the log
existed) or one the log cannot vouch for is reconciled with the store's template ids
in full.

One Workflow serves many threads at once (a server answers requests in parallel
threads, with no lock around a whole request). What they share is guarded, each piece
by its own lock held only for that piece: the face engine's model passes run one at a
time in the process (`SerialEngine`: dlib's detectors and networks keep per-object
scratch state); the index is opened, caught up with the change log and changed under
`_index_lock`, and a search scores it under the index's own shared lock
(`candor.index.gallery.SharedLock`), so it sees the rows as they were between two
changes; the probe cache has a lock; every attribute made on first use is made once.
The index never goes back: a search whose snapshot is older than the index's change
seq searches the newer index, and `governed` keeps only candidates its own snapshot
holds. Removed templates are forgotten for good (`GalleryIndex.forget`), so an
enrolment or a catch-up from an older snapshot, running beside the removal, never puts
one back.

Every time the workflow records (a request's creation, a run, an approval, an audit
entry, a login's expiry, whether a certificate is still valid) comes from the
workflow's clock, the system clock unless a caller gives another. A simulation gives a
clock that walks through weeks of activity in minutes; real use never sets one.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session, SessionTransactionOrigin

from candor.faces import EngineSettings, FaceEngine, ModelId
from candor.faces.recipe import DEFAULT_RECIPE, Recipe, Views
from candor.faces.records import DetectedFace, Template, UInt8Array
from candor.images import DecodedImage
from candor.index import GalleryIndex, IndexFolderBusyError, IndexFolderError
from candor.index.cohort import COHORT_SIZE, CohortNormaliser, gallery_cohort_ids, score_name
from candor.store import Workspace, templates_for_model
from candor.store.changes import (
    ADDED,
    REMOVED,
    changes_after,
    earliest_change,
    latest_change,
    stored_template_ids,
    template_vectors,
)
from candor.store.face_models import newest_model_activation_id
from candor.workflow.limits import PROBE_CACHE_BYTES

if TYPE_CHECKING:
    from candor.workflow.audit_trail import CheckpointSchedule
    from candor.workflow.probes import Probe

_REBUILD_BATCH = 50_000
# Names this node where several share one home: each keeps its index files apart.
NODE_VARIABLE = "CANDOR_NODE"

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The present, in UTC: the clock of every real workflow."""
    return datetime.now(UTC)


def _safe_name(text: str) -> str:
    """`text` as one folder name: anything but letters, digits, dot, dash, underscore as _."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


class ProbeCache:
    """Probes read in this process, by (image sha256, face index asked), least recently
    used dropped first, holding at most `max_bytes` (`probe_bytes` of each).

    It only spares re-detecting a photo searched again soon (a rerun after approval, a
    simulation reusing its probes); it holds decoded photos that are also in the vault.
    Bounded by bytes, not by count: one probe at the probe limits holds about 105 MB, a
    passport photo a few hundred kB. A probe larger than the whole bound is not kept.
    """

    def __init__(self, max_bytes: int = PROBE_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._probes: OrderedDict[tuple[str, int | None], tuple[Probe, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # an OrderedDict reordered by two threads breaks

    def get(self, sha256: str, face_index: int | None) -> Probe | None:
        """The probe read earlier from these bytes with this face choice, if still held."""
        key = (sha256, face_index)
        with self._lock:
            held = self._probes.get(key)
            if held is None:
                return None
            self._probes.move_to_end(key)
            return held[0]

    def put(self, sha256: str, face_index: int | None, probe: Probe) -> None:
        """Keep `probe`, dropping the least recently used ones until the bound holds."""
        key = (sha256, face_index)
        size = probe_bytes(probe)
        with self._lock:
            previous = self._probes.pop(key, None)
            if previous is not None:
                self._bytes -= previous[1]
            if size > self.max_bytes:
                return
            self._probes[key] = (probe, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._probes.popitem(last=False)
                self._bytes -= dropped

    @property
    def nbytes(self) -> int:
        """The bytes the held probes count for (at most `max_bytes`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._probes)


# What a probe holds besides its arrays and bytes (the objects, the face's description):
# small, but counted so that a flood of tiny probes is bounded too.
_PROBE_OVERHEAD = 4096


def _array_bytes(array: np.ndarray) -> int:
    # A view keeps its whole base alive: count that.
    base = array.base
    return int(base.nbytes) if isinstance(base, np.ndarray) else int(array.nbytes)


def probe_bytes(probe: Probe) -> int:
    """The memory `probe` keeps: decoded pixels, the file's bytes, the template, overhead."""
    return (
        _array_bytes(probe.image.pixels)
        + len(probe.image.data)
        + _array_bytes(probe.template.vector)
        + _PROBE_OVERHEAD
    )


class SerialEngine(FaceEngine):
    """The workflow's face engine: its model passes run one at a time in this process.

    dlib's detectors, shape predictor and network are not safe to call from two threads
    at once, and they hold the GIL while they run, so taking turns costs no parallelism:
    that comes from several worker processes, each with its own engine. The lock covers
    detection, alignment and embedding only, never a request's database work.
    """

    def __init__(self, settings: EngineSettings) -> None:
        super().__init__(settings)
        self._passes = threading.RLock()

    def detect_faces(self, image: DecodedImage) -> list[DetectedFace]:
        with self._passes:
            return super().detect_faces(image)

    def aligned_chip(self, image: DecodedImage, face: DetectedFace) -> UInt8Array:
        with self._passes:
            return super().aligned_chip(image, face)

    def face_template(
        self, image: DecodedImage, face: DetectedFace, views: Views = "plain"
    ) -> Template:
        with self._passes:
            return super().face_template(image, face, views)


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
        """settings: the face engine's settings as given, pinned for this Workflow's life
            (tests, evaluations of one model). None: the workspace's active model (see
            `settings`), followed when another process switches it (`model_in_step`).
        clock: where recorded times come from (timezone-aware; default the system's).
        checkpoint_schedule: when audit checkpoints are made without being asked
            (default: CheckpointSchedule.from_environment() at each entry).
        recipe: how templates are made and scores judged (`candor.faces.recipe`); its
            detector fallback replaces the settings' own.
        """
        self.workspace = workspace
        self.recipe = recipe
        self._base_settings = replace(settings or EngineSettings(), fallback=recipe.fallback)
        # Read from the store on first use when not given (`settings`); with the id of the
        # model_activations row they follow (0: none, dlib), which `model_in_step` compares.
        self._settings: EngineSettings | None = None if settings is None else self._base_settings
        self._settings_pinned = settings is not None
        self._activation_id = 0
        self._settings_lock = threading.Lock()
        self.clock = clock
        self.checkpoint_schedule = checkpoint_schedule
        self.probe_cache = ProbeCache()
        self._engine: FaceEngine | None = None
        self._engine_lock = threading.Lock()
        self._index: GalleryIndex | None = None
        # Held to open the index, catch it up and remove from it (not to search it).
        self._index_lock = threading.RLock()
        self._cohort: tuple[tuple[int, int], CohortNormaliser] | None = None
        self._cohort_lock = threading.Lock()

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
    def settings(self) -> EngineSettings:
        """The face engine's settings: as given, else the active model's (read once, then
        again only when `model_in_step` sees a switch). A model whose file changed on disk
        is refused here (`candor.workflow.models.ModelError`), before any template is made."""
        if self._settings is None:
            with self._settings_lock:
                if self._settings is None:  # another thread may have read it meanwhile
                    with self.workspace.session() as session:
                        self._settings, self._activation_id = self._active_settings(session)
        return self._settings

    @settings.setter
    def settings(self, settings: EngineSettings) -> None:
        """Pin other settings (before the engine is made: it keeps the ones it was made with)."""
        self._settings = settings
        self._settings_pinned = True

    @property
    def follows_active_model(self) -> bool:
        """Whether this Workflow makes templates with the workspace's active model (False
        when its settings are pinned: then with whatever model they name)."""
        return not self._settings_pinned

    @property
    def base_settings(self) -> EngineSettings:
        """The settings around the model (detector, quality gate, recipe's fallback): what
        `candor.workflow.models.model_settings` puts a model's embedder into."""
        return self._base_settings

    def _active_settings(self, session: Session) -> tuple[EngineSettings, int]:
        # Imported here: candor.workflow.models builds on this module (Workflow).
        from candor.workflow.models import active_model_settings

        return active_model_settings(session, self._base_settings)

    def model_in_step(self, session: Session | None = None) -> bool:
        """Follow a switch of the active model made since this Workflow read it (another
        process's re-enrolment job, or this one's); True when it switched.

        One indexed query (the newest model_activations row) when nothing changed. On a
        switch, the engine, index and cohort are dropped and made again for the new model
        on next use; the old index is flushed and its folder let go. Pinned settings are
        never switched. Called at the start of every search (and by `index_in_step`).
        """
        if self._settings_pinned:
            return False
        if session is None:
            with self.workspace.session() as own:
                return self.model_in_step(own)
        newest = newest_model_activation_id(session)
        if self._settings is not None and newest == self._activation_id:
            return False
        settings, activation_id = self._active_settings(session)
        # Innermost the settings lock, as `engine` takes it (through `settings`) inside
        # the engine lock: a first read of the settings racing this one finishes first.
        with self._cohort_lock, self._index_lock, self._engine_lock, self._settings_lock:
            switched = self._settings is not None and settings != self._settings
            self._settings, self._activation_id = settings, activation_id
            if not switched:
                return False
            old_index, self._index = self._index, None
            self._engine = None
            self._cohort = None
            if old_index is not None:
                old_index.close()
        return True

    @property
    def engine(self) -> FaceEngine:
        """The face engine (models load on first use of it)."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:  # another thread may have made it meanwhile
                    self._engine = SerialEngine(self.settings)
        return self._engine

    @property
    def index_loaded(self) -> bool:
        """Whether the index has been opened in this process (and so must be kept in step)."""
        return self._index is not None

    @property
    def index(self) -> GalleryIndex:
        """Every template of the engine's model in the store, ready to search.

        In step with the store when first opened, and with every change made through this
        Workflow since; a search calls `index_in_step` to see other processes' changes.
        """
        return self._opened_index(None)

    def _opened_index(self, writing: Session | None) -> GalleryIndex:
        """The index, opened first if need be; `writing`: the caller's session, where the
        index's data key is made should it have none yet (see `_index_key`)."""
        if self._index is None:
            with self._index_lock:
                if self._index is None:  # another thread may have opened it meanwhile
                    model = self.engine.model
                    key = self._index_key(model.key, writing)
                    with self.workspace.session() as session:
                        self._index = self._open_index(session, latest_change(session), key)
        return self._index

    def _index_key(self, model_key: str, caller: Session | None) -> bytes:
        """The data key sealing the index files of one model (made on first use).

        Read, or made, in the caller's transaction when it is a writing one (begun
        explicitly: on SQLite it holds the write lock, which a transaction of our own
        would wait on for ever); else in a short transaction of our own. A key made in a
        caller's transaction that then rolls back is lost with it: the files sealed under
        it are refused at the next open and rebuilt from the store.
        """
        if caller is not None:
            transaction = caller.get_transaction()
            if transaction is not None and transaction.origin is SessionTransactionOrigin.BEGIN:
                return self.workspace.keys.index_key(caller, model_key)
        with self.workspace.session() as session, session.begin():
            return self.workspace.keys.index_key(session, model_key)

    def index_in_step(self, session: Session) -> GalleryIndex:
        """The index, brought in step with the gallery as committed in `session`'s snapshot.

        Called at the start of a search's transaction, before anything else reads the
        index (the gallery's size sets the threshold). Costs one indexed query when no
        template was added or removed since the last call.
        """
        # The active model first: a switch made by another process drops the old index.
        self.model_in_step(session)
        # Opened first on a reading connection of its own: a first reconcile reads every
        # template id, too long to hold the write lock `session` may hold through.
        index = self._opened_index(session)
        latest = latest_change(session)
        applied = index.change_seq
        if applied is None or applied < latest:
            with self._index_lock:  # one catch-up at a time; the next finds less to do
                self._catch_up(session, index, latest)
        # An index ahead of this snapshot (another thread caught up from a newer one) is
        # searched as it is: it never goes back to re-add what a later change removed.
        return index

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
        with self._cohort_lock, self._index_lock:  # no change between the ids and vectors
            key = (id(index), index.changes)
            if self._cohort is None or self._cohort[0] != key:
                members = gallery_cohort_ids(index.ids)
                self._cohort = (key, CohortNormaliser(index.vectors_of(members), k))
            return self._cohort[1]

    def index_folder(self, model: ModelId) -> Path:
        """Where this node keeps the index of one model's templates.

        index/<model> by default; index/nodes/<node>/<model> when CANDOR_NODE names this
        node, so nodes sharing one home on a shared mount each keep files of their own and
        never write each other's (without it, the first node holds the folder and the
        others index in memory, rebuilt from the database at each start).
        """
        model_part = _safe_name(model.key)
        node = os.environ.get(NODE_VARIABLE, "").strip()
        if not node:
            return self.workspace.home / "index" / model_part
        node_part = _safe_name(node).lstrip(".") or "_"  # never "." or ".."
        return self.workspace.home / "index" / "nodes" / node_part / model_part

    def forget_templates(self, template_ids: Iterable[int]) -> None:
        """Drop templates from this Workflow's index and from every index folder on disk.

        For removals already committed to the store (expungement, retention): a folder
        another Workflow or node holds is scrubbed in place, so no index file keeps the
        vectors; that node also removes them itself when it next catches up.
        """
        ids = list(template_ids)
        with self._index_lock:
            held = self._index.folder if self._index is not None else None
            if self._index is not None:
                self._index.forget(ids)
        root = self.workspace.home / "index"
        if root.is_dir():
            for meta in sorted(root.rglob("meta.json")):
                if meta.parent != held:
                    GalleryIndex.scrub(meta.parent, ids, lambda key: self._index_key(key, None))

    def reseal_index(self, session: Session) -> None:
        """Give each index a new data key, destroying the old one, and reseal the files of
        the index this Workflow holds under it (`candor keys rotate --kek`, in the
        rotation's transaction, after the data keys are re-wrapped under the new KEK).

        Once the old key is gone, no copy of the index files sealed under it (an old
        backup) can be opened, even with the old KEK. Folders of this workspace that this
        Workflow does not hold are sealed under the destroyed key: whoever opens one next
        finds it sealed under another key and rebuilds it from the store; a process holding
        one keeps sealing its chunks under the old key until it restarts.
        """
        models = set()
        root = self.workspace.home / "index"
        if root.is_dir():
            for meta in root.rglob("meta.json"):
                model = GalleryIndex.folder_model(meta.parent)
                if model is not None:
                    models.add(model)
        with self._index_lock:
            index = self._index
            if index is not None:
                models.add(index.model.key)
            for model_key in sorted(models):
                self.workspace.keys.destroy_index_key(session, model_key)
            session.flush()
            if index is not None and index.folder is not None:
                index.reseal(self.workspace.keys.index_key(session, index.model.key))

    def _open_index(self, session: Session, latest: int, key: bytes) -> GalleryIndex:
        model = self.engine.model
        folder = self.index_folder(model)
        # Releases before 0007 made the workspace's index/ readable by everyone (0755).
        root = self.workspace.home / "index"
        if root.is_dir() and root.stat().st_mode & 0o077:
            root.chmod(0o700)
        try:
            index = GalleryIndex.open(folder, model, key=key)
        except IndexFolderBusyError:
            index = GalleryIndex(model)
        except IndexFolderError:
            # A derived cache: damaged or foreign files, files sealed under a key since
            # destroyed, and the plaintext files of releases before sealing, are erased
            # (zeroed) and rebuilt from the store.
            GalleryIndex.erase_folder(folder)
            index = GalleryIndex(model, folder, key=key)
        if index.change_seq is not None and index.change_seq > latest:
            # The database went back to an older copy than the one the files reflect.
            index.change_seq = None
        self._catch_up(session, index, latest)
        return index

    def _catch_up(self, session: Session, index: GalleryIndex, latest: int) -> None:
        """Apply the changes logged after the index's `change_seq`, up to `latest`.

        An index that records no change seq, or one the log cannot take forward (it lacks
        rows the index needs), is reconciled with the store's template ids in full instead.
        Nothing is done when the index is already at or past `latest` (another thread
        caught it up from a newer snapshot). Callers hold `_index_lock` or own the index.
        """
        applied = index.change_seq
        if applied is not None and applied >= latest:
            return
        if applied is None or earliest_change(session) > applied + 1:
            self._reconcile(session, index)
        else:
            changes = changes_after(session, applied, index.model.key, up_to=latest)
            self._apply_changes(session, index, changes)
        index.change_seq = latest
        index.flush()

    def _apply_changes(
        self, session: Session, index: GalleryIndex, changes: list[tuple[int, str]]
    ) -> None:
        """Replay logged changes; safe to replay ones the index already has.

        This Workflow's own enrolments reach the index directly as well, so an add of a
        template already held is skipped. A template removed at any point in `changes` is
        dropped first, so a row whose id or vector was replaced is read again.
        """
        removed = {template_id for template_id, kind in changes if kind == REMOVED}
        index.forget(removed)
        last = {template_id: kind for template_id, kind in changes}
        wanted = [t for t, kind in last.items() if kind == ADDED and t not in index]
        if not wanted:
            return
        workspace = self.workspace
        found = template_vectors(session, wanted, index.model.key, workspace.vault, workspace.keys)
        ids = sorted(found)
        for start in range(0, len(ids), _REBUILD_BATCH):
            batch = ids[start : start + _REBUILD_BATCH]
            index.add(batch, np.stack([found[template_id] for template_id in batch]))

    def _reconcile(self, session: Session, index: GalleryIndex) -> None:
        """Bring the index to exactly the store's templates of its model."""
        model_key = index.model.key
        stored = stored_template_ids(session, model_key)
        held = index.live_ids
        if held - stored:
            index.remove(held - stored)
        missing = stored - held
        if not missing:
            return
        ids: list[int] = []
        vectors: list[np.ndarray] = []
        rows = templates_for_model(session, model_key, self.workspace.vault, self.workspace.keys)
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

    def reconcile_index(self, session: Session) -> None:
        """Bring the index to exactly the store's templates in `session`'s snapshot, however
        far its files had drifted (`candor check --fix` for an index that disagrees)."""
        with self._index_lock:
            index = self.index
            self._reconcile(session, index)
            index.change_seq = latest_change(session)
            index.flush()

    def close(self) -> None:
        """Write the index's pending changes, let go of its folder, close the database."""
        with self._index_lock:
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
