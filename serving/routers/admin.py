"""Business rules and experiments (admin scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Response

from serving.business_rules import Rule
from serving.deps import AdminKey, ConfigDep
from serving.experiments import NAME_PATTERN, Experiment, variant_stats
from serving.responses import OrjsonResponse

router = APIRouter(prefix="/v1", tags=["admin"])

Name = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64)]


@router.get("/rules")
async def list_rules(_key: AdminKey, config: ConfigDep) -> OrjsonResponse:
    await config.refresh()
    return OrjsonResponse({"rules": [r.model_dump(exclude_none=True) for r in config.rules]})


@router.put("/rules/{rule_id}", responses={422: {"description": "Invalid rule"}})
async def put_rule(
    rule_id: Name, _key: AdminKey, config: ConfigDep, body: Annotated[Rule, Body()]
) -> OrjsonResponse:
    rule = body.model_copy(update={"id": rule_id})
    await config.put_rule(rule)
    return OrjsonResponse(rule.model_dump(exclude_none=True))


@router.delete(
    "/rules/{rule_id}", status_code=204, responses={404: {"description": "No such rule"}}
)
async def delete_rule(rule_id: Name, _key: AdminKey, config: ConfigDep) -> Response:
    if not await config.delete_rule(rule_id):
        raise HTTPException(404, f"no rule {rule_id!r}")
    return Response(status_code=204)


@router.get("/experiments")
async def list_experiments(_key: AdminKey, config: ConfigDep) -> OrjsonResponse:
    await config.refresh()
    return OrjsonResponse(
        {
            "experiments": [
                e.model_dump() for e in sorted(config.experiments.values(), key=lambda e: e.name)
            ]
        }
    )


@router.put("/experiments/{name}", responses={422: {"description": "Invalid experiment"}})
async def put_experiment(
    name: Name, _key: AdminKey, config: ConfigDep, body: Annotated[Experiment, Body()]
) -> OrjsonResponse:
    experiment = body.model_copy(update={"name": name})
    await config.put_experiment(experiment)
    return OrjsonResponse(experiment.model_dump())


@router.delete(
    "/experiments/{name}", status_code=204, responses={404: {"description": "No such experiment"}}
)
async def delete_experiment(name: Name, _key: AdminKey, config: ConfigDep) -> Response:
    if not await config.delete_experiment(name):
        raise HTTPException(404, f"no experiment {name!r}")
    return Response(status_code=204)


@router.get("/experiments/{name}/stats", responses={404: {"description": "No such experiment"}})
async def experiment_stats(name: Name, _key: AdminKey, config: ConfigDep) -> OrjsonResponse:
    await config.refresh()
    experiment = config.experiments.get(name)
    if experiment is None:
        raise HTTPException(404, f"no experiment {name!r}")
    counts = await config.experiment_counts(name)
    body: dict[str, Any] = {"experiment": name, "variants": variant_stats(experiment, counts)}
    return OrjsonResponse(body)
