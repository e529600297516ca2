"""Servicer plumbing: tenant resolution, request validation and error mapping around every
method, and list paging."""

import functools
import logging

from assistd.v1 import common_pb2
from google.protobuf.message import Message

from service.errors import ApiError, to_rpc_error
from service.store import ListQuery
from service.validation import Undecodable, check_limit, check_request

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


async def _begin(servicer, request, context) -> str:
    """The caller's tenant, once the request has passed the rules every request obeys."""
    tenant = await servicer.auth.tenant(context.invocation_metadata())
    if isinstance(request, (Message, Undecodable)):  # client-streaming methods check each part themselves
        check_request(request)
    return tenant


def unary(method):
    """Resolves the tenant, validates the request, and turns errors into gRPC statuses with ErrorInfo."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            tenant = await _begin(self, request, context)
            return await method(self, tenant, request, context)
        except Exception as exc:
            await _abort(context, exc)

    return wrapper


def streaming(method):
    """`unary` for server-streaming methods written as async generators."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            tenant = await _begin(self, request, context)
            async for response in method(self, tenant, request, context):
                yield response
        except Exception as exc:
            await _abort(context, exc)

    return wrapper


def list_query(request, default: int = 20, maximum: int = 100) -> ListQuery:
    """OpenAI's list parameters (limit 1..maximum; order desc by default)."""
    limit = check_limit(request, default, maximum)
    before = getattr(request, "before", "")
    return ListQuery(limit=limit, order=_ORDERS[request.order], after=request.after, before=before)


def apply_mask(target: Message, source: Message, paths) -> None:
    """An update's new values onto the stored object (AIP-134): each field the mask names is
    replaced whole by the source's, and cleared when the source leaves it unset."""
    for path in paths:
        field = target.DESCRIPTOR.fields_by_name[path]
        target.ClearField(path)
        value = getattr(source, path)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for key, item in value.items():
                    getattr(target, path)[key].CopyFrom(item)
            else:
                getattr(target, path).update(value)
        elif field.is_repeated:
            getattr(target, path).extend(value)
        elif not field.has_presence or source.HasField(path):
            if field.message_type is not None:
                getattr(target, path).CopyFrom(value)
            else:
                setattr(target, path, value)


# A list response holds at most this many bytes (and at least one object): a page of large objects
# must stay far below the gRPC message limit (64 MiB), or the tenant could not list them at all.
PAGE_BYTES = 16 * 1024 * 1024


def page(response, items, has_more: bool):
    total = 0
    for i, item in enumerate(items):
        total += item.ByteSize()
        if i and total > PAGE_BYTES:
            items, has_more = items[:i], True
            break
    response.data.extend(items)
    response.first_id = items[0].id if items else ""
    response.last_id = items[-1].id if items else ""
    response.has_more = has_more
    return response
