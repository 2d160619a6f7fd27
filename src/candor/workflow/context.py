"""The workflow's working set: one open workspace, one face engine, one in-memory index.

Every verb in this package takes a `Workflow`. The face engine and the index are made
on first use, so commands that never compare faces (listing subjects, say) load no
model, and the index is rebuilt from the store once per process and then kept in step
with every enrolment and expungement made through the same `Workflow`.
"""

from __future__ import annotations

from types import TracebackType

import numpy as np

from candor.faces import EngineSettings, FaceEngine
from candor.index import TemplateIndex
from candor.store import Workspace, templates_for_model

_REBUILD_BATCH = 50_000


class Workflow:
    """Candor's verbs run against this: a workspace plus the face engine and its index."""

    def __init__(self, workspace: Workspace, settings: EngineSettings | None = None) -> None:
        self.workspace = workspace
        self.settings = settings or EngineSettings()
        self._engine: FaceEngine | None = None
        self._index: TemplateIndex | None = None

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
