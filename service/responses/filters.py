"""file_search `filters` of a Responses tool: OpenAI's comparison and compound filters (JSON) as
the AttributeFilter the vector store search applies (service/retrieval/search.py). Every error
is an InvalidArgument naming its `param`."""

from typing import Any

from assistd.v1 import vector_store_pb2 as vs_pb2

from service.errors import InvalidArgument, missing
from service.protojson import enum_names, enum_number
from service.validation import check_filter

_COMPARISONS = vs_pb2.ComparisonOperator.DESCRIPTOR
_COMPOUNDS = vs_pb2.CompoundOperator.DESCRIPTOR
_SCALARS = (str, int, float, bool)


def parse_filter(value: Any, param: str) -> vs_pb2.AttributeFilter:
    """The filter `value` (a comparison or compound filter) given at `param`."""
    flt = vs_pb2.AttributeFilter()
    _fill(flt, value, param)
    check_filter(flt, param)
    return flt


def _fill(flt: vs_pb2.AttributeFilter, value: Any, param: str) -> None:
    if not isinstance(value, dict):
        raise InvalidArgument(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    kind = value.get("type")
    if kind is None:
        raise missing(f"{param}.type")
    compound = enum_number(_COMPOUNDS, kind) if isinstance(kind, str) else None
    comparison = enum_number(_COMPARISONS, kind) if isinstance(kind, str) else None
    if compound is None and comparison is None:
        allowed = ", ".join(repr(v) for v in [*enum_names(_COMPARISONS), *enum_names(_COMPOUNDS)])
        raise InvalidArgument(
            f"Invalid value: '{kind}'. Supported filter types are: {allowed}.",
            param=f"{param}.type",
            code="invalid_value",
        )
    known = {"type", "filters"} if compound is not None else {"type", "key", "value"}
    for key in value:
        if key not in known:
            raise InvalidArgument(
                f"Unknown parameter: '{param}.{key}'.", param=f"{param}.{key}", code="unknown_parameter"
            )
    if compound is not None:
        flt.compound.type = compound  # type: ignore[assignment]
        inner = value.get("filters")
        if not isinstance(inner, list):
            raise InvalidArgument(
                f"Invalid type for '{param}.filters': expected an array.", param=f"{param}.filters", code="invalid_type"
            )
        for i, item in enumerate(inner):
            _fill(flt.compound.filters.add(), item, f"{param}.filters[{i}]")
        return
    flt.comparison.type = comparison  # type: ignore[assignment]
    key = value.get("key")
    if key is not None and not isinstance(key, str):
        raise InvalidArgument(
            f"Invalid type for '{param}.key': expected a string.", param=f"{param}.key", code="invalid_type"
        )
    flt.comparison.key = key or ""
    target = value.get("value")
    if target is None:
        return  # check_filter names it missing
    if not (
        isinstance(target, _SCALARS) or (isinstance(target, list) and all(isinstance(v, _SCALARS) for v in target))
    ):
        raise InvalidArgument(
            f"Invalid type for '{param}.value': expected a string, number, boolean or an array of them.",
            param=f"{param}.value",
            code="invalid_type",
        )
    if isinstance(target, list):
        flt.comparison.value.list_value.extend(target)
    elif isinstance(target, bool):
        flt.comparison.value.bool_value = target
    elif isinstance(target, str):
        flt.comparison.value.string_value = target
    else:
        flt.comparison.value.number_value = target
