"""``/healthz`` (the process answers), ``/readyz`` (database and Kafka answer), ``/metrics``. No key needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves requests")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database and Kafka answer",
    responses={503: {"description": "Something the API needs does not answer; the body says what"}},
)
async def readyz(request: Request) -> Any:
    checks = await request.app.state.readiness.check()
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)


@router.get(
    "/metrics", summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}},
)  # fmt: skip
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
