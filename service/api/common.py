"""What every servicer shares: tenant resolution, error mapping, paging and validation."""

import functools
import logging
import re

from assistd.v1 import common_pb2

from service.errors import ApiError, InvalidArgument, to_rpc_error
from service.store import ListQuery

log = logging.getLogger(__name__)

_ORDERS = {
    common_pb2.LIST_ORDER_UNSPECIFIED: "desc",
    common_pb2.LIST_ORDER_ASC: "asc",
    common_pb2.LIST_ORDER_DESC: "desc",
}


async def _abort(context, exc: Exception):
    if not isinstance(exc, ApiError):  # a store failure or a bug: the caller gets no details, the log does
        log.error("request failed", exc_info=exc)
    error = to_rpc_error(exc)
    await context.abort(error.status, error.message, trailing_metadata=error.trailing_metadata())


def unary(method):
    """Resolves the tenant and turns errors into gRPC statuses with ErrorInfo."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            tenant = self.auth.tenant(context.invocation_metadata())
            return await method(self, tenant, request, context)
        except Exception as exc:
            await _abort(context, exc)

    return wrapper


def streaming(method):
    """`unary` for server-streaming methods written as async generators."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            tenant = self.auth.tenant(context.invocation_metadata())
            async for response in method(self, tenant, request, context):
                yield response
        except Exception as exc:
            await _abort(context, exc)

    return wrapper


def list_query(request, default: int = 20, maximum: int = 100) -> ListQuery:
    """OpenAI's list parameters (limit 1..maximum; order desc by default)."""
    limit = request.limit if request.HasField("limit") else default
    if not 1 <= limit <= maximum:
        raise InvalidArgument(
            f"Invalid 'limit': expected a value between 1 and {maximum}, but got {limit} instead.",
            param="limit",
            code="integer_out_of_range",
        )
    before = getattr(request, "before", "")
    return ListQuery(limit=limit, order=_ORDERS[request.order], after=request.after, before=before)


def page(response, items, has_more: bool):
    response.data.extend(items)
    response.first_id = items[0].id if items else ""
    response.last_id = items[-1].id if items else ""
    response.has_more = has_more
    return response


def check_metadata(metadata, param: str = "metadata") -> None:
    if len(metadata) > 16:
        raise InvalidArgument(f"Invalid '{param}': too many properties. Expected at most 16.", param=param)
    for key, value in metadata.items():
        if len(key) > 64:
            raise InvalidArgument(f"Invalid '{param}': keys can be at most 64 characters long.", param=param)
        if len(value) > 512:
            raise InvalidArgument(f"Invalid '{param}': values can be at most 512 characters long.", param=param)


def check_range(request, field: str, low: float, high: float, param: str | None = None) -> None:
    if request.HasField(field):
        value = getattr(request, field)
        if not low <= value <= high:
            name = param or field
            raise InvalidArgument(
                f"Invalid '{name}': expected a value between {low:g} and {high:g}, but got {value:g} instead.",
                param=name,
                code="decimal_out_of_range",
            )


def check_length(value: str, limit: int, param: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, "
            f"but got a string with length {len(value)} instead.",
            param=param,
            code="string_above_max_length",
        )


_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def check_tools(tools, param: str = "tools") -> None:
    if len(tools) > 128:
        raise InvalidArgument(f"Invalid '{param}': at most 128 tools are allowed.", param=param)
    for i, tool in enumerate(tools):
        if tool.WhichOneof("kind") == "function" and not _FUNCTION_NAME.match(tool.function.name):
            raise InvalidArgument(
                f"Invalid '{param}[{i}].function.name': must be 1-64 characters of a-z, A-Z, 0-9, '_' or '-'.",
                param=f"{param}[{i}].function.name",
                code="invalid_value",
            )
