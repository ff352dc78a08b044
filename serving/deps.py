"""Dependencies routes ask for: settings, Redis, the producer, the recommender, API keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from currents.redis_client import AsyncRedis
from currents.settings import Settings
from profiles.rules import ProfileRules
from serving.config_store import ConfigStore
from serving.metrics import ApiMetrics
from serving.producer import EventProducer
from serving.profiles import ProfileReader
from serving.recommend import Recommender
from serving.security import ApiKey, authenticate
from serving.segment_store import SegmentStore

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

# Dependencies are ``async def``: FastAPI runs a plain ``def`` one in a worker thread, and
# that hand-off cost more than the rest of a slate-served recommendation.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_redis(request: Request) -> AsyncRedis:
    return request.app.state.redis


async def get_producer(request: Request) -> EventProducer:
    return request.app.state.producer


async def get_recommender(request: Request) -> Recommender:
    return request.app.state.recommender


async def get_profiles(request: Request) -> ProfileReader:
    return request.app.state.profiles


async def get_segment_store(request: Request) -> SegmentStore:
    return request.app.state.segments


async def get_config(request: Request) -> ConfigStore:
    return request.app.state.config


async def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


async def get_rules(request: Request) -> ProfileRules:
    return request.app.state.rules


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[AsyncRedis, Depends(get_redis)]
ProducerDep = Annotated[EventProducer, Depends(get_producer)]
RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
RulesDep = Annotated[ProfileRules, Depends(get_rules)]
ProfilesDep = Annotated[ProfileReader, Depends(get_profiles)]
ConfigDep = Annotated[ConfigStore, Depends(get_config)]
SegmentStoreDep = Annotated[SegmentStore, Depends(get_segment_store)]


async def authorize(request: Request, presented: str | None, scope: str) -> ApiKey:
    """The presented key, when it may use ``scope`` now; else the HTTP error saying why."""
    if not presented:
        raise HTTPException(
            401,
            "missing API key: send it in the X-API-Key header",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    key = authenticate(request.app.state.api_keys, presented)
    if key is None:
        raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "ApiKey"})
    if scope not in key.scopes:
        raise HTTPException(403, f"this API key lacks the {scope!r} scope")
    decision = await request.app.state.rate_limiter.check(key.name)
    if not decision.allowed:
        raise HTTPException(
            429,
            "rate limit exceeded for this API key",
            headers={"Retry-After": str(decision.retry_after_s)},
        )
    return key


def require_scope(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    async def check(
        request: Request, presented: Annotated[str | None, Security(api_key_header)]
    ) -> ApiKey:
        return await authorize(request, presented, scope)

    return check


Model = TypeVar("Model", bound=BaseModel)


class RequestRoute(APIRoute):
    """A route whose endpoint takes the :class:`Request` and returns the
    :class:`Response` itself: FastAPI's dependency solving and response serialisation
    are skipped (they cost more than a slate-served answer, docs/performance.md), its
    OpenAPI description is the route's as declared. For the hottest route only; its
    parameters come from :func:`request_model`, its key from :func:`authorize`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


def request_model(model: type[Model], request: Request) -> Model:
    """The request's path and query parameters as ``model``: 422 with FastAPI's error
    shape, the field named, when they do not fit. For the hottest route, where FastAPI's
    per-parameter dependency machinery cost more than the answer (docs/performance.md);
    its OpenAPI description comes from the same model (:func:`openapi_parameters`)."""
    path = request.path_params
    try:
        return model.model_validate({**request.query_params, **path})
    except ValidationError as error:
        errors = [
            {**e, "loc": ("path" if e["loc"][0] in path else "query", *e["loc"])}
            for e in error.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from None


def openapi_parameters(model: type[BaseModel], path: Collection[str]) -> list[dict[str, Any]]:
    """``model``'s fields as OpenAPI parameters (for ``openapi_extra``): the ``path``
    ones in the path, the rest in the query."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    parameters = []
    for name, field in schema["properties"].items():
        parameter: dict[str, Any] = {
            "name": name,
            "in": "path" if name in path else "query",
            "required": name in path,
        }
        if "description" in field:
            parameter["description"] = field["description"]
        parameter["schema"] = {k: v for k, v in field.items() if k != "description"}
        parameters.append(parameter)
    return parameters


IngestKey = Annotated[ApiKey, Depends(require_scope("ingest"))]
ReadKey = Annotated[ApiKey, Depends(require_scope("read"))]
AdminKey = Annotated[ApiKey, Depends(require_scope("admin"))]
