"""The FastAPI application: wires the engine-facing context to HTTP and WebSocket routes, and adds the
cross-cutting guards (body size, security headers, validation errors that never echo input)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.steering import ChangeError
from server.admission import PredictionSlots
from server.auth import TokenGuard, ensure_token, token_url
from server.context import AppContext
from server.database import STORAGE_ERRORS, DatabaseError, DatabaseUnavailable
from server.limits import LimitError
from server.messages import ControlMessage, ServerMessage
from server.owners import OwnerCookie
from server.routers import meta, models, playground, runs, ws
from server.schemas import SnapshotMessage
from server.security import SiteGuard
from server.settings import Settings, get_settings
from server.steer import BrokerUnavailable, Conflict, Forbidden, NotFound, QueueFull, QuotaExceeded

log = logging.getLogger("nnplay")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Swagger UI's page bootstraps itself with one inline script; it gets its own, looser policy.
DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


class BodyLimit:
    """413 for bodies over the limit, decided from Content-Length before reading, or by counting chunks
    otherwise; the application never sees more than the limit."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_model_upload = scope["path"] == "/api/models" and scope["method"] == "POST"
        limit = self.settings.max_model_bytes if is_model_upload else self.settings.max_body_bytes
        name = "max_model_bytes" if is_model_upload else "max_body_bytes"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send, name, limit)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, name, limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send, name: str, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than the limit {name}={limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = (DOCS_CSP if scope["path"] == "/docs" else CSP).encode()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", policy),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class UIMount(Mount):
    """The static page at "/", but never for /api or /ws paths: those must reach the router's own 404/405
    (with a correct Allow header) instead of the file server's answer."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if path.startswith(("/api/", "/ws/")) or path in ("/api", "/ws"):
            return Match.NONE, {}
        return super().matches(scope)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors without 'input' or 'ctx': no user input is reflected back (a NaN in it would even
    make the response itself invalid JSON)."""
    return [
        {"loc": list(e.get("loc", [])), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors
    ]


def _document_messages(app: FastAPI) -> None:
    """WebSocket messages have no route to hang a response_model on: their schemas join the OpenAPI document's
    components (ServerMessage, SnapshotMessage, ControlMessage), so clients can generate types for them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model in (
                ("ServerMessage", TypeAdapter(ServerMessage)),
                ("SnapshotMessage", TypeAdapter(SnapshotMessage)),
                ("ControlMessage", TypeAdapter(ControlMessage)),
            ):
                model_schema = model.json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[name] = model_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# What a run operation's refusal answers, for every route (the WebSocket sends them as error messages).
RUN_ERRORS: dict[type[Exception], int] = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    ChangeError: 422,
    LimitError: 422,
    QueueFull: 429,
    QuotaExceeded: 429,
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings, generated = ensure_token(settings or get_settings())
    if generated:  # `nnplay serve` makes and prints the token itself; this is for any other way of serving the app
        token = settings.token.get_secret_value() if settings.token else ""
        log.warning("this server needs a token: open %s", token_url(settings.host, settings.port, token))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = AppContext.create(settings)
        app.state.ctx = ctx
        ctx.runs.attach(asyncio.get_running_loop())
        interrupted = 0
        if ctx.store.dialect == "sqlite":  # a shared database's active runs may be other processes' (cluster mode)
            try:
                interrupted = ctx.store.mark_interrupted()
            except STORAGE_ERRORS as exc:  # a read-only or full data directory: start anyway, serve what is there
                log.warning("cannot update the run database: %s", exc)
        if interrupted:
            log.warning("%d run(s) were cut off by the last shutdown and are marked interrupted", interrupted)
        loop = asyncio.get_running_loop()
        if settings.train_default_model:
            if ctx.data.ready("mnist") or ctx.cluster:
                ctx.ensure_default_model()
            else:
                ctx.fetch_in_background("mnist", lambda: loop.call_soon_threadsafe(ctx.ensure_default_model))
        yield
        await ctx.runs.shutdown()
        ctx.store.close()

    app = FastAPI(
        title="nnplay",
        description="A neural-network playground: a NumPy engine trained live over WebSockets.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,  # ReDoc loads from a CDN that our own CSP blocks; /docs is vendored and works offline
    )
    app.state.prediction_slots = PredictionSlots(settings.max_concurrent_predictions)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _clean_errors(exc.errors())})

    @app.exception_handler(sqlite3.Error)
    async def storage_error(request: Request, exc: sqlite3.Error) -> JSONResponse:
        # A full disk or a read-only data directory: the action that needed a write fails clearly, and
        # everything that only reads (runs, curves, models, predictions) keeps working.
        return JSONResponse(status_code=507, content={"detail": f"the server could not write its database: {exc}"})

    async def run_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=RUN_ERRORS[type(exc)], content={"detail": str(exc)})

    for error in RUN_ERRORS:
        app.add_exception_handler(error, run_error)

    @app.exception_handler(BrokerUnavailable)
    async def broker_error(request: Request, exc: BrokerUnavailable) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "5"})

    @app.exception_handler(DatabaseUnavailable)
    async def database_unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        # The PostgreSQL server is down or restarting: nothing is lost, and the next request reconnects.
        return JSONResponse(
            status_code=503, content={"detail": f"{exc}; try again shortly"}, headers={"Retry-After": "5"}
        )

    @app.exception_handler(DatabaseError)
    async def database_error(request: Request, exc: DatabaseError) -> JSONResponse:
        return JSONResponse(status_code=507, content={"detail": f"the server could not write its database: {exc}"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 400:  # a body that is not even text: as unprocessable as malformed JSON
            return JSONResponse(status_code=422, content={"detail": "the request body is not valid JSON"})
        if exc.status_code == 405:
            # Starlette lists only the first route's methods; a path served by several routes has them all
            path = request.url.path
            methods = {
                m
                for route in app.router.routes
                if isinstance(route, APIRoute) and route.path_regex.match(path)
                for m in route.methods or ()
            }
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=headers)

    for router in (meta.router, runs.router, models.router, playground.router, ws.router):
        app.include_router(router)

    vendor = settings.frontend_dir / "node_modules"
    swagger = vendor / "swagger-ui-dist"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if swagger.is_dir():  # served from our own node_modules: the docs work offline
            return get_swagger_ui_html(
                openapi_url="/openapi.json",
                title="nnplay API",
                swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
                swagger_favicon_url="/favicon.svg",
            )
        return get_swagger_ui_html(openapi_url="/openapi.json", title="nnplay API")

    if swagger.is_dir():
        app.mount("/vendor/swagger-ui", StaticFiles(directory=swagger), name="swagger")
    if (vendor / "uplot" / "dist").is_dir():
        app.mount("/vendor/uplot", StaticFiles(directory=vendor / "uplot" / "dist"), name="uplot")
    if settings.frontend_dir.is_dir():
        ui = StaticFiles(directory=settings.frontend_dir / "public", html=True, check_dir=False)
        app.router.routes.append(UIMount("/", app=ui, name="ui"))

    _document_messages(app)
    # outermost last: security headers on every answer, then Host/Origin/type, then the token, the owner, the body
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(OwnerCookie, settings=settings)
    app.add_middleware(TokenGuard, settings=settings)
    app.add_middleware(SiteGuard, settings=settings)
    app.add_middleware(SecurityHeaders)
    return app
