"""The jobs page's FastAPI app: the page, its static files and the JSON API behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments import PrefectUnavailable
from upload_jobs.errors import JobNotClaimable, JobNotFound, UploadJobError
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.pages import MAX_JOB_ID, MAX_PER_PAGE, JobFilter, read_job_page
from upload_jobs.jobs.retry_outcome import queued_message
from upload_jobs.jobs.retry_policy import retry_policy
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.streaming_stats import StreamingStats, completed_startups, streaming_stats
from upload_jobs.settings import get_settings
from upload_jobs.web.access import (
    SESSION_COOKIE,
    AccessPolicy,
    access_guard,
    login_page,
    security_headers,
)
from upload_jobs.web.body_limits import BodyLimit
from upload_jobs.web.retries import RetryQueue
from upload_jobs.web.views import (
    ApiError,
    JobDetailView,
    JobPageView,
    RetryAccepted,
    RetryAllAccepted,
    SkippedJob,
    attempt_view,
    flow_run_link,
    job_view,
    streaming_view,
)

STATIC_DIR = Path(__file__).parent / "static"
JobId = Annotated[int, PathParam(ge=1, le=MAX_JOB_ID, description="The upload job's id.")]
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ApiError} for code in (404, 409, 422)}


def http_status_for(exc: Exception) -> int:
    """The HTTP status each domain error maps to (once, here)."""
    if isinstance(exc, JobNotFound):
        return 404
    if isinstance(exc, JobNotClaimable):
        return 409
    if isinstance(exc, PrefectUnavailable):
        return 503
    if isinstance(exc, UploadJobError):
        return 422  # the job's own input: its source file is missing, empty or unreadable
    return 500


def _without_nul(search: str | None) -> str | None:
    """The search text, refused when it holds NUL: PostgreSQL cannot even compare with it."""
    if search is not None and "\x00" in search:
        raise ValueError("it contains a NUL character, which no file name can hold")
    return search


def create_app(
    retry_queue: RetryQueue, policy: AccessPolicy, prefect_ui_url: str | None = None
) -> FastAPI:
    """The app; `retry_queue` runs the retries, `policy` says who may ask for them."""
    app = FastAPI(
        title="Upload Jobs",
        summary="Watch and retry video uploads to DigitalOcean Spaces.",
        version="1",
        # Every refusal has one shape, `ApiError`, whatever refused it: a wrong method, a body
        # too large, parameters that do not validate (not FastAPI's list of errors).
        responses={status: {"model": ApiError} for status in (405, 413, 422)},
    )
    headers = security_headers(get_settings().resolved_public_base_url())
    # Added first, so it runs inside the access guard: a 413 gets the security headers too.
    app.add_middleware(BodyLimit)
    app.middleware("http")(access_guard(policy, headers))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def store() -> JobStore:
        return JobStore(get_settings().database_url)

    def ui_url() -> str | None:
        # Known at once, or once the queue knows where retries run (Prefect may be starting).
        return prefect_ui_url or retry_queue.prefect_ui_url

    @app.exception_handler(UploadJobError)
    @app.exception_handler(PrefectUnavailable)
    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        kind = getattr(exc, "error_kind", None)
        body = ApiError(detail=str(exc), error_kind=kind)
        return JSONResponse(body.model_dump(), status_code=http_status_for(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # A path that does not exist, or a method the path does not take (405, with Allow).
        said = {404: "No such page or API route", 405: f"{request.method} is not allowed here"}
        body = ApiError(detail=said.get(exc.status_code, str(exc.detail)))
        return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One readable line, like every other refusal, instead of pydantic's error list.
        problems = "; ".join(
            f"{' '.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        body = ApiError(detail=f"Invalid request: {problems}")
        return JSONResponse(body.model_dump(), status_code=422)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/login", include_in_schema=False)
    def login_form() -> Response:
        return login_page() if policy.token else RedirectResponse("/", status_code=303)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if not policy.token:
            return RedirectResponse("/", status_code=303)
        # Parsed by hand: one field does not justify a form-parsing dependency.
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        if not policy.token_matches(form.get("token", [""])[0]):
            return login_page("That is not this server's token.", status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE, policy.session_value(), httponly=True, samesite="strict"
        )
        return response

    @app.get("/api/jobs", response_model=JobPageView, tags=["jobs"])
    def list_jobs(
        status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
        q: Annotated[
            str | None,
            Query(max_length=200, description="Part of the file name or path."),
            AfterValidator(_without_nul),
        ] = None,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 50,
    ) -> JobPageView:
        """A page of jobs, newest first, with each one's latest flow run and live progress."""
        job_store = store()
        found = read_job_page(job_store.database_url, JobFilter(status, q), page, per_page)
        counts = dict.fromkeys((s.value for s in JobStatus), 0)
        counts |= job_store.count_jobs_by_status()
        rows = [
            job_view(
                job,
                found.latest_attempts.get(job.id or 0),
                ui_url(),
                retry_queue.is_queued(job),
            )
            for job in found.jobs
        ]
        return JobPageView(
            jobs=rows,
            total=found.total,
            page=found.page,
            per_page=found.per_page,
            pages=found.pages,
            counts=counts,
            retry_mode=retry_queue.mode,
            prefect_ui_url=ui_url(),
        )

    @app.get(
        "/api/jobs/{job_id:int}", response_model=JobDetailView, responses=ERRORS, tags=["jobs"]
    )
    def show_job(job_id: JobId) -> JobDetailView:
        """One job with every attempt (flow run, outcome, fallback reason, step timings)."""
        job_store = store()
        job = job_store.get_job(job_id)
        attempts = job_store.list_attempts(job_id)
        row = job_view(
            job, attempts[-1] if attempts else None, ui_url(), retry_queue.is_queued(job)
        )
        history = [attempt_view(attempt, ui_url()) for attempt in attempts]
        return JobDetailView(
            **row.model_dump(), attempt_history=history, streaming=streaming_view(attempts)
        )

    @app.get("/api/stats", response_model=StreamingStats, tags=["jobs"])
    def stats() -> StreamingStats:
        """What the streaming optimization bought over every completed job (`upload-jobs
        stats`): paths taken, fallbacks by kind, startup bytes saved, a histogram."""
        return streaming_stats(completed_startups(store().database_url))

    @app.post(
        "/api/jobs/retry-failed",
        response_model=RetryAllAccepted,
        status_code=202,
        tags=["retries"],
    )
    def retry_failed() -> RetryAllAccepted:
        """Queue a retry of every failed job whose source file is there; say which were skipped."""
        jobs = store().list_jobs(status=JobStatus.FAILED, limit=1_000_000)
        ready, skipped = [], []
        for job in sorted(jobs, key=lambda j: j.id or 0):
            try:
                retry_queue.check_retryable(job, store(), retry_policy(get_settings()))
            except UploadJobError as exc:
                skipped.append(SkippedJob(id=job.id or 0, reason=str(exc)))
            else:
                ready.append(job)
        queued = retry_queue.submit_many(ready)
        message = f"{len(queued)} failed upload job{'s' if len(queued) != 1 else ''} queued"
        message += " for retry" + (f"; {len(skipped)} skipped" if skipped else "")
        return RetryAllAccepted(
            queued=len(queued), job_ids=queued, skipped=skipped, message=message
        )

    @app.post(
        "/api/jobs/{job_id:int}/retry",
        response_model=RetryAccepted,
        status_code=202,
        responses={**ERRORS, 503: {"model": ApiError}},
        tags=["retries"],
    )
    def retry_job(job_id: JobId) -> RetryAccepted:
        """Queue a retry: 404 unknown id, 409 running, queued or completed, 422 source missing."""
        job = store().get_job(job_id)
        retry_queue.check_retryable(job, store(), retry_policy(get_settings()))
        queued = retry_queue.submit(job)
        return RetryAccepted(
            job_id=job_id,
            message=queued_message(job_id, get_settings().preset),
            flow_run_id=queued.flow_run_id,
            flow_run_url=flow_run_link(ui_url(), queued.flow_run_id),
            mode=retry_queue.mode,
        )

    return app
