"""REST routes of the accelerator catalogue (read-only: the catalogue is data shipped with the code)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from suanwang import catalog
from suanwang.api.deps import CtxDep
from suanwang.errors import NotFound

router = APIRouter(tags=["catalog"])


class AcceleratorRead(BaseModel):
    model: str
    vendor: str
    name: str
    memory_gib: int
    dense_fp16_tflops: float
    domestic: bool
    source: str


def _read(a: catalog.Accelerator) -> AcceleratorRead:
    return AcceleratorRead(
        model=a.model,
        vendor=a.vendor,
        name=a.name,
        memory_gib=a.memory_gib,
        dense_fp16_tflops=float(a.dense_fp16_tflops),
        domestic=a.domestic,
        source=a.source,
    )


@router.get("/accelerators", response_model=list[AcceleratorRead])
def list_accelerators(_ctx: CtxDep) -> list[AcceleratorRead]:
    return [_read(a) for a in catalog.accelerators()]


@router.get("/accelerators/{model}", response_model=AcceleratorRead)
def get_accelerator(model: str, _ctx: CtxDep) -> AcceleratorRead:
    found = catalog.find(model)
    if found is None:
        raise NotFound("not-found", what="accelerator", id=model)
    return _read(found)
