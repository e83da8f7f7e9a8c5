"""The 2-D playground's points: what a generated data set's options make, to draw under the live pictures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, field_validator

from engine.datasets import REGISTRY, toy
from server.config import StrictModel, check_data_options

router = APIRouter(prefix="/api/playground", tags=["playground"])


class PointsRequest(StrictModel):
    dataset: Annotated[str, Field(description="a generated 2-D data set from GET /api/datasets")]
    data: dict[str, Any] | None = None

    @field_validator("dataset")
    @classmethod
    def _generated(cls, name: str) -> str:
        if name not in toy.GENERATORS:
            raise ValueError(f"not a generated 2-D data set; choose one of {sorted(toy.GENERATORS)}")
        return name


class PointSet(BaseModel):
    x1: list[float]
    x2: list[float]
    label: list[float]  # class 0/1, or the regression target


class PointsOut(BaseModel):
    task: str
    train: PointSet
    test: PointSet


@router.post("/points", response_model=PointsOut, responses={422: {}})
def points(body: PointsRequest) -> PointsOut:
    """The points (x1, x2) and labels a run with these options trains and tests on, in the same order."""
    try:
        check_data_options(REGISTRY[body.dataset], body.data)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    pts, labels, n_test = toy.generate(body.dataset, body.data)
    n_train = pts.shape[0] - n_test
    rounded = pts.round(4)
    values = labels.astype(float).round(4)

    def part(sl: slice) -> PointSet:
        return PointSet(x1=rounded[sl, 0].tolist(), x2=rounded[sl, 1].tolist(), label=values[sl].tolist())

    return PointsOut(task=REGISTRY[body.dataset].task, train=part(slice(0, n_train)), test=part(slice(n_train, None)))
