"""The gallery pages (admins): subjects searched by reference and paged, one subject's
photos with their face boxes and provenance, enrolment, and asking to expunge.

A photo showing several faces is never enrolled by a guess: the page shows each face
with its number and the admin chooses one (the CLI's --face N). Expungement is asked for
here with a reason; a second admin confirms it on the Users page (workflow.expunge).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from candor.server.api import (
    MAX_ENROL_FILES,
    FaceIndex,
    ProvenanceDep,
    StateDep,
    SubjectRef,
    SubjectRefPath,
    enrol_uploads,
    run,
    saved,
)
from candor.server.auth import Caller, caller
from candor.server.errors import RefusedError
from candor.server.web import data_uri, render
from candor.workflow import Provenance, limits, request_expunge
from candor.workflow.gallery import (
    enrolment_faces,
    gallery_subject,
    gallery_subject_page,
    subject_photos,
)
from candor.workflow.paging import DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_PAGE_SIZE, PageRequest

router = APIRouter(include_in_schema=False)
CallerDep = Annotated[Caller, Depends(caller)]
PrefixQuery = Annotated[str, Query(max_length=limits.SUBJECT_REF.max_length)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
ReasonField = Annotated[str, Form(max_length=limits.REASON.max_length)]
StagedField = Annotated[str, Form(max_length=100)]


def inline_jpeg(data: bytes | None) -> str | None:
    """A photo inline in the page (the CSP allows data: images), as the review page sends
    its photos: no separate URL that could be cached or shared."""
    return None if data is None else "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _gallery_page(
    request: Request,
    state: StateDep,
    who: Caller,
    *,
    prefix: str = "",
    page: PageRequest | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    asked = page or PageRequest()
    found = run(state, gallery_subject_page, state.workflow, who.signed_in, asked, prefix=prefix)

    def link(offset: int | None) -> str | None:
        if offset is None:
            return None
        query = {"prefix": prefix, "limit": str(found.limit), "offset": str(offset)}
        return "/gallery?" + urlencode({k: v for k, v in query.items() if v})

    return render(
        request,
        "gallery.html",
        status=status,
        title="Gallery",
        subjects=found.items,
        prefix=prefix,
        pager={
            "describe": found.describe(),
            "next": link(found.next_offset),
            "previous": link(found.previous_offset),
        },
        source_types=state.workflow.workspace.allowed_source_types(),
        **extra,
    )


@router.get("/gallery")
def gallery_page(
    request: Request,
    state: StateDep,
    who: CallerDep,
    prefix: PrefixQuery = "",
    limit: LimitQuery = DEFAULT_PAGE_SIZE,
    offset: OffsetQuery = 0,
) -> Response:
    page = PageRequest(limit=limit, offset=offset)
    return _gallery_page(request, state, who, prefix=prefix.strip(), page=page)


@router.get("/gallery/{subject_ref}")
def subject_page(
    request: Request,
    state: StateDep,
    who: CallerDep,
    subject_ref: SubjectRefPath,
) -> Response:
    return _subject_page(request, state, who, subject_ref)


def _subject_page(
    request: Request, state: StateDep, who: Caller, subject_ref: str, **extra: Any
) -> Response:
    detail = run(state, gallery_subject, state.workflow, who.signed_in, subject_ref)
    photos = run(state, subject_photos, state.workflow, who.signed_in, subject_ref)
    pictures = {photo.image_id: inline_jpeg(photo.jpeg) for photo in photos}
    return render(
        request,
        "subject.html",
        title=f"Subject {subject_ref}",
        detail=detail,
        pictures=pictures,
        **extra,
    )


@router.post("/gallery/{subject_ref}/expunge")
def subject_expunge(
    request: Request,
    state: StateDep,
    who: CallerDep,
    subject_ref: SubjectRefPath,
    reason: ReasonField = "",
) -> Response:
    change = run(state, request_expunge, state.workflow, who.signed_in, subject_ref, reason)
    message = (
        f"Expunging {subject_ref} requested as change {change.id}; nothing is removed until "
        "another admin confirms it on the Users page."
    )
    return _subject_page(request, state, who, subject_ref, message=message)


@router.post("/gallery/enrol")
def gallery_enrol(
    request: Request,
    state: StateDep,
    who: CallerDep,
    provenance: ProvenanceDep,
    subject_ref: SubjectRef,
    photos: Annotated[list[UploadFile], File()],
    face_index: FaceIndex = None,
) -> Response:
    if face_index is None:
        choice = _faces_to_choose(state, who, photos)
        if choice is not None:
            return _gallery_page(
                request,
                state,
                who,
                status=409,
                choice={
                    **choice,
                    "subject_ref": subject_ref,
                    "provenance": provenance_fields(provenance),
                },
                error=choice["sentence"],
            )
    result = enrol_uploads(state, who, subject_ref, photos, provenance, face_index)
    return _gallery_page(request, state, who, outcomes=result["outcomes"])


def _faces_to_choose(state: StateDep, who: Caller, photos: list[UploadFile]) -> Any:
    """None when every photo shows at most one face; else the faces of the one photo that
    shows several, held (staged) for the choice. Several photos, one of them with
    several faces, are refused: a face number would apply to all of them."""
    if not 1 <= len(photos) <= MAX_ENROL_FILES:
        return None  # enrol_uploads refuses it with the limit
    with state.upload_folder() as folder:
        for number, photo in enumerate(photos, start=1):
            sub = folder / str(number)
            sub.mkdir()
            path = saved(sub, photo, f"photo-{number}")
            faces = run(state, enrolment_faces, state.workflow, who.signed_in, path)
            # The upload is read again by the enrolment (or staged below).
            photo.file.seek(0)
            if len(faces) < 2:
                continue
            if len(photos) > 1:
                raise RefusedError(
                    409,
                    f"{path.name} shows {len(faces)} faces: enrol it on its own and choose "
                    "which face is the subject's",
                )
            staged = state.stage(who.session_token, path.name, path.read_bytes())
            return {
                "sentence": (
                    f"{path.name} shows {len(faces)} faces: choose the one that is the "
                    "subject's; nothing is enrolled until you do"
                ),
                "staged": staged,
                "filename": path.name,
                "faces": [
                    {
                        "index": face.index,
                        "usable": face.usable,
                        "reasons": face.reasons,
                        "picture": data_uri(face.preview_png),
                    }
                    for face in faces
                ],
            }
    return None


@router.post("/gallery/enrol/face")
def gallery_enrol_face(
    request: Request,
    state: StateDep,
    who: CallerDep,
    provenance: ProvenanceDep,
    subject_ref: SubjectRef,
    staged: StagedField,
    face_index: Annotated[int, Form(ge=0, le=1000)],
) -> Response:
    held = state.take_staged(who.session_token, staged)
    with state.upload_folder() as folder:
        path = folder / held.filename
        path.write_bytes(held.data)
        with path.open("rb") as handle:
            upload = UploadFile(handle, filename=held.filename)
            result = enrol_uploads(state, who, subject_ref, [upload], provenance, face_index)
    return _gallery_page(request, state, who, outcomes=result["outcomes"])


def provenance_fields(provenance: Provenance) -> dict[str, str]:
    """The provenance as the enrolment form's fields, carried to the face choice."""
    return {
        "source_type": provenance.source_type,
        "source_ref": provenance.source_ref,
        "legal_basis": provenance.legal_basis,
        "collected_on": provenance.collected_on.isoformat(),
        "retain_until": provenance.retain_until.isoformat(),
    }


__all__ = ["router"]
