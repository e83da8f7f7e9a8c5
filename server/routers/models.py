"""Models for prediction: list and upload, and POST /api/predict."""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from engine.model import Model, ModelFormatError
from server.admission import PredictionSlots
from server.context import AppContext, Ctx
from server.database import FILE_OR_STORAGE_ERRORS, DatabaseUnavailable
from server.explaining import explain
from server.imaging import ImageError, prepare
from server.limits import LimitError, check_spec_limits
from server.owners import caller_of
from server.pictures import feature_maps
from server.registry import UnknownModel
from server.schemas import ModelInfo, PredictRequest, PredictResponse, UploadedModel
from server.steer import new_id
from server.strokes import render_strokes

router = APIRouter(prefix="/api", tags=["models"])


@router.get("/models", response_model=list[ModelInfo])
def list_models(ctx: Ctx, request: Request) -> list[ModelInfo]:
    return ctx.models.listing(caller_of(request))


@router.delete("/models/{model_id}", status_code=204, responses={403: {}, 404: {}}, response_class=Response)
def delete_model(
    model_id: Annotated[str, Path(pattern=r"^m[0-9a-f]{10}$", description="an uploaded model's id")],
    ctx: Ctx,
    request: Request,
) -> Response:
    """Remove an uploaded model: its owner (who uploaded it) or the token holder only. A run's model goes
    with its run (DELETE /api/runs/{id})."""
    row = ctx.store.get_model(model_id)
    if row is None:
        raise HTTPException(404, "no uploaded model with this id")
    if not caller_of(request).may_control(row["owner"]):
        raise HTTPException(403, "only the model's owner (or the token holder) may delete it")
    if not ctx.models.delete_upload(model_id):
        raise HTTPException(404, "no uploaded model with this id")
    return Response(status_code=204)


def _check_upload_quota(ctx: AppContext, owner: str, size: int) -> None:
    s = ctx.settings
    usage = ctx.store.owner_usage(owner)
    if usage["models"] >= s.max_models_per_owner:
        raise HTTPException(
            429,
            f"you keep {usage['models']} uploaded models: the quota max_models_per_owner={s.max_models_per_owner}"
            " is reached; delete some (DELETE /api/models/ID)",
        )
    if usage["bytes"] + size > s.max_bytes_per_owner:
        raise HTTPException(
            429,
            f"your runs and models take {usage['bytes']} bytes and this model {size}: the quota"
            f" max_bytes_per_owner={s.max_bytes_per_owner} would be passed; delete some",
        )


@router.post(
    "/models",
    status_code=201,
    response_model=UploadedModel,
    responses={413: {}, 422: {}},
    openapi_extra={
        "requestBody": {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "required": True,
        }
    },
)
async def upload_model(
    request: Request, ctx: Ctx, name: Annotated[str, Query(max_length=80)] = "uploaded model"
) -> UploadedModel:
    payload = await request.body()  # already capped at max_model_bytes by the size middleware
    if not payload:
        raise HTTPException(422, "the request body must be an .npz model file")
    owner = caller_of(request).owner
    _check_upload_quota(ctx, owner, len(payload))
    model_id = new_id("m")
    try:
        # the same size limits as a run's network, from the header alone, before any array is read
        check_spec_limits(await run_in_threadpool(Model.read_spec, payload), ctx.settings)
        # off the event loop: checking a 40 MB file takes a moment
        model = await run_in_threadpool(ctx.models.upload, model_id, name, payload, owner)
    except (ModelFormatError, LimitError) as exc:
        raise HTTPException(422, f"rejected model: {exc}") from None
    except DatabaseUnavailable:
        raise  # 503 with Retry-After (server/app.py): nothing is wrong with the model
    except FILE_OR_STORAGE_ERRORS as exc:
        raise HTTPException(507, f"could not store the model: {getattr(exc, 'strerror', None) or exc}") from None
    return UploadedModel(id=model_id, name=name, spec=model.spec.to_dict())


@router.post("/predict", response_model=PredictResponse, responses={404: {}, 413: {}, 422: {}, 503: {}})
async def predict(body: PredictRequest, ctx: Ctx, request: Request) -> PredictResponse:
    slots: PredictionSlots = request.app.state.prediction_slots
    if not slots.try_acquire():
        raise HTTPException(
            503,
            f"busy: {slots.size} predictions are computing (max_concurrent_predictions); retry in a second",
            headers={"Retry-After": "1"},
        )
    try:
        # decoding and the forward pass run in a worker thread, never on the event loop
        if body.model is not None and body.model.startswith("r"):  # a run's model: only if the caller may see it
            run = ctx.store.get_run(body.model)
            if run is not None and not caller_of(request).may_see(run["owner"], run["shared"]):
                raise HTTPException(404, "no model with this id")
        return await run_in_threadpool(_predict, body, ctx)
    finally:
        slots.release()


def _predict(body: PredictRequest, ctx: AppContext) -> PredictResponse:
    started = time.perf_counter()
    s = ctx.settings
    try:
        if body.strokes is not None:
            if body.image is not None or body.pixels is not None:
                raise ImageError("Send exactly one of 'image', 'pixels' or 'strokes'.")
            image = render_strokes(body.strokes)
        else:
            image = prepare(body.image, body.pixels, max_bytes=s.max_image_bytes, max_side=s.max_canvas_side)
    except ImageError as exc:
        raise HTTPException(exc.status_code, str(exc)) from None
    try:
        model_id, model = ctx.models.get(body.model)
    except UnknownModel as exc:
        raise HTTPException(404, str(exc)) from None
    except ModelFormatError as exc:
        raise HTTPException(422, f"the model cannot be loaded: {exc}") from None
    if model.spec.input_size != image.size:
        raise HTTPException(422, f"model {model_id} takes {model.spec.input_size} inputs, not a 28x28 drawing")
    probs = model.probabilities(image.reshape(1, -1))[0]
    probs = np.nan_to_num(probs.astype(np.float64))
    explanation = explain(model, image, probs, body.target) if body.explain else None
    ctx.predict_times.append(time.perf_counter() - started)
    return PredictResponse(
        digit=int(np.argmax(probs)),
        probabilities=[round(float(p), 6) for p in probs],
        input=np.round(image, 4).tolist(),
        model=model_id,
        feature_maps=feature_maps(model, image.reshape(1, -1).astype(model.dtype)),
        explanation=explanation,
    )
