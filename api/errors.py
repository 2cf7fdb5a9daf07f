"""Error bodies: every error is JSON `{"error": code, "reason": text}`; bad input is a 4xx, never a 5xx."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from beffroi.store import StoreError


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_")
    except ValueError:
        return "error"


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    reason = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors)
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
    return JSONResponse(
        {"error": "invalid_request", "reason": reason, "detail": jsonable_encoder(detail)}, status_code=422
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": _code(exc.status_code), "reason": str(exc.detail)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "store_unavailable", "reason": str(exc)}, status_code=503)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)
