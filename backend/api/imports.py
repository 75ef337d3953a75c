"""History imports (API.md `POST /imports`): upload, then follow the load's progress.

The upload is read as a stream, never as one body in memory, so the generic
Idempotency-Key middleware (which buffers bodies up to KRAVLAB_MAX_BODY_BYTES) is skipped
for it and the same contract is kept here: the key is claimed with a hash of the request
computed while streaming, a replay answers the first import's id, a key reused for another
upload answers 422 and one still in flight 409.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, RequestBody, Schema
from litestar.params import FromPath
from msgspec import Meta, Struct

from backend import imports, jobs
from backend.api.deps import Cursor, Limit
from backend.api.page import Page
from backend.api.statuses import IdempotentOperation
from backend.idempotency import HEADER, MAX_KEY_LENGTH, IdempotencyMiddleware
from backend.queue import QueueUnavailable, enqueue
from backend.settings import Settings
from tenants.scope import TenantScope

Status = Literal["queued", "running", "done", "failed"]


class ImportProblem(Struct):
    file: Annotated[str, Meta(description="invoices.csv, payments.csv or actions.csv")]
    line: Annotated[int, Meta(ge=0, description="1 is the header row; 0: the file as a whole")]
    column: str
    message: str


class ImportAccepted(Struct):
    id: UUID
    status: Status


class ImportOut(Struct):
    id: UUID
    status: Status
    stage: Annotated[str, Meta(description="queued, validating, writing, done or failed")]
    progress: Annotated[float, Meta(ge=0, le=1)]
    invoices: int
    payments: int
    contacts: int
    errors: Annotated[
        list[ImportProblem],
        Meta(description=f"the first {imports.MAX_LISTED_PROBLEMS} problems, in file order"),
    ]
    error_count: Annotated[int, Meta(description="every problem found, listed or not")]
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


_FILE = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]


@dataclass
class UploadOperation(IdempotentOperation):
    """The multipart body the handler reads as a stream, documented for clients."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            required=True,
            description="A history in the format of formats/README.md §1, one file per part",
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={name: _FILE for name in imports.FILES},
                        required=list(imports.REQUIRED_FILES),
                    )
                )
            },
        )


def _boundary(request: Request[Any, Any, Any]) -> bytes:
    content_type, options = request.content_type
    boundary = options.get("boundary", "")
    if content_type != "multipart/form-data" or not boundary:
        raise imports.UnsupportedMediaType(
            "send multipart/form-data with the parts invoices.csv, payments.csv (and actions.csv)"
        )
    if len(boundary) > 200 or not boundary.isprintable():
        raise imports.UnsupportedMediaType("malformed multipart boundary")
    return boundary.encode("latin-1")


def _idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    raw = dict(request.scope["headers"]).get(HEADER)
    if raw is None:
        return None
    key = raw.decode("latin-1").strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        from litestar.exceptions import ClientException

        raise ClientException(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters")
    return key


class ImportController(Controller):
    path = "/api/v1/tenants/{tenant_id:uuid}/imports"
    tags = ["imports"]

    @post(
        "/",
        status_code=202,
        opt={"permission": "imports:write", "no_idempotency": True},
        operation_class=UploadOperation,
        request_max_body_size=None,  # KRAVLAB_MAX_IMPORT_BYTES, checked as the body streams
        raises=[imports.UnsupportedMediaType, imports.TooLarge, imports.KeyInFlight],
        responses={
            202: ResponseSpec(
                data_container=ImportAccepted,
                description="Accepted: the history is stored and its load is queued",
                generate_examples=False,
            )
        },
        summary="Upload a payment history (multipart: invoices.csv, payments.csv, actions.csv)",
        description="Answers 202 at once; the load runs in a job, all or nothing. Follow it "
        "with GET /imports/{import_id}: progress, counts and every bad line by file, line "
        "and column.",
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantScope],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        boundary = _boundary(request)
        key = _idempotency_key(request)
        import_id = uuid4()
        folder = imports.folder_of(settings.var_dir, import_id)
        upload = await imports.receive(
            request.stream(), boundary, folder, settings.max_import_bytes, request.scope["path"]
        )
        keeper = IdempotencyMiddleware(
            settings.idempotency_ttl_hours, settings.idempotency_lock_seconds, 0
        )
        credential = tenant.principal.actor
        if key is not None:
            outcome = await keeper._claim(str(tenant.tenant_id), credential, key, upload.digest)
            if outcome is not None:
                imports.discard_files(settings.var_dir, import_id)
                status, answer, replayed, content_type = outcome
                return Response(
                    content=answer,
                    status_code=status,
                    media_type=content_type,
                    headers={"Idempotent-Replayed": "true"} if replayed else None,
                )
        captured: dict[str, Any] = {"status": 500, "body": [], "type": MediaType.JSON}
        try:
            await imports.create(tenant, import_id, upload)
            try:
                enqueue(
                    settings,
                    jobs.load_import,
                    str(tenant.tenant_id),
                    str(import_id),
                    job_id=imports.job_id(import_id),
                    retries=1,
                    timeout=settings.import_timeout_seconds,
                )
            except QueueUnavailable:
                await imports.forget(tenant, import_id)
                imports.discard_files(settings.var_dir, import_id)
                raise
            accepted = ImportAccepted(import_id, "queued")
            captured.update(status=202, body=[msgspec.json.encode(accepted)])
            return Response(accepted, status_code=202)
        finally:
            if key is not None:
                await keeper._finish(credential, key, captured, ())

    @get("/", opt={"permission": "read"}, summary="The tenant's imports, newest first")
    async def list_imports(
        self,
        tenant: NamedDependency[TenantScope],
        settings: NamedDependency[Settings],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[ImportOut]:
        items, next_cursor = await imports.page(tenant, limit, cursor, imports.lost_check(settings))
        return Page(msgspec.convert(items, list[ImportOut]), next_cursor)

    @get(
        "/{import_id:uuid}",
        opt={"permission": "read"},
        summary="An import: status, progress, counts and its problems by file, line and column",
    )
    async def get_import(
        self,
        tenant: NamedDependency[TenantScope],
        settings: NamedDependency[Settings],
        import_id: FromPath[UUID],
    ) -> ImportOut:
        found = await imports.get(tenant, import_id, imports.lost_check(settings))
        return msgspec.convert(found, ImportOut)
