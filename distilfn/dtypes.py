"""Column types: Python annotations to Polars dtypes, and checks that a value can be stored.

A plan's output schema is decided before the first request: every task output and
every ``map_rows`` output has a Polars dtype, from its declared type (``str`` when
undeclared). :func:`dtype_of` turns what users write (``int``, ``list[str]``, a msgspec
Struct, ``pl.Int8``) into a dtype; :func:`checker` gives the function that vets one
value for a column of that dtype before it enters the frame, so that one bad value
fails only its row.
"""

from __future__ import annotations

import datetime as dt
import decimal
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import msgspec
import polars as pl

__all__ = ["dtype_of", "checker", "StoreError", "describe", "instance", "lone_surrogate"]


class StoreError(ValueError):
    """A value that cannot be stored in its column (the message says why and where)."""


_SCALARS: dict[Any, pl.DataType] = {
    str: pl.String(),
    int: pl.Int64(),
    float: pl.Float64(),
    bool: pl.Boolean(),
    bytes: pl.Binary(),
    dt.date: pl.Date(),
    dt.datetime: pl.Datetime("us"),
    dt.time: pl.Time(),
    dt.timedelta: pl.Duration("us"),
    decimal.Decimal: pl.Decimal(38, 9),
}
_SEQUENCES = (list, tuple, Sequence, typing.Sequence, set, frozenset)


def instance(dtype: Any) -> pl.DataType:
    """``dtype`` as an instance (nested dtypes may hold dtype classes such as ``pl.Int8``).

    >>> instance(pl.Int8), instance(pl.List(pl.Int8)).inner
    (Int8, Int8)
    """
    if isinstance(dtype, type):
        dtype = dtype()
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, type):
        return pl.List(instance(dtype.inner))
    if isinstance(dtype, pl.Array) and isinstance(dtype.inner, type):
        return pl.Array(instance(dtype.inner), dtype.shape)
    if isinstance(dtype, pl.Struct) and any(isinstance(f.dtype, type) for f in dtype.fields):
        return pl.Struct({f.name: instance(f.dtype) for f in dtype.fields})
    return dtype


def dtype_of(tp: Any, *, where: str = "column") -> pl.DataType:
    """The Polars dtype for a declared column type.

    >>> dtype_of(int), dtype_of(list[str]), dtype_of(str | None)
    (Int64, List(String), String)
    >>> dtype_of(pl.Int8)
    Int8
    >>> dtype_of(dict)
    Traceback (most recent call last):
    ...
    TypeError: column: cannot store values of type dict; declare str, int, float, bool, list[...], a msgspec Struct or a polars dtype
    """
    if isinstance(tp, pl.DataType):
        return instance(tp)
    if isinstance(tp, type) and issubclass(tp, pl.DataType):
        try:
            return tp()
        except TypeError:
            msg = f"{where}: the polars dtype {tp.__name__} needs its parameters, e.g. pl.List(pl.String)"
            raise TypeError(msg) from None
    if tp in _SCALARS:
        return _SCALARS[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return dtype_of(args[0], where=where)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return dtype_of(rest[0], where=where)
        msg = f"{where}: a column holds one type, got {describe(tp)}"
        raise TypeError(msg)
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        if len(kinds) == 1 and next(iter(kinds)) in (str, int, bool):
            return _SCALARS[next(iter(kinds))]
        msg = f"{where}: a Literal column needs values of one type (str, int or bool), got {describe(tp)}"
        raise TypeError(msg)
    if origin in _SEQUENCES:
        if not args or (origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)):
            msg = f"{where}: say what the list holds, e.g. list[str], got {describe(tp)}"
            raise TypeError(msg)
        return pl.List(dtype_of(args[0], where=where))
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return pl.Struct({f.name: dtype_of(f.type, where=f"{where}.{f.name}") for f in msgspec.structs.fields(tp)})
    if typing.is_typeddict(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        return pl.Struct({name: dtype_of(h, where=f"{where}.{name}") for name, h in hints.items()})
    msg = (
        f"{where}: cannot store values of type {describe(tp)}; declare str, int, float, bool, list[...], "
        "a msgspec Struct or a polars dtype"
    )
    raise TypeError(msg)


def describe(tp: Any) -> str:
    """A short name for a type or value's type, as error messages show it.

    >>> describe(list[int]), describe(3)
    ('list[int]', 'int')
    """
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    if typing.get_origin(tp) is not None or isinstance(tp, types.UnionType):
        return str(tp).replace("typing.", "")
    return type(tp).__name__


# -- checking values --------------------------------------------------------------------

Check = Callable[[Any], Any]


def _path(path: str) -> str:
    return f" at {path}" if path else ""


def _fail(expected: str, value: Any, path: str) -> StoreError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return StoreError(f"expected {expected}, got {type(value).__name__} {shown}{_path(path)}")


def lone_surrogate(text: str) -> int | None:
    """The position of the first lone surrogate in ``text`` (UTF-8 cannot hold one), or None.

    >>> lone_surrogate("ok é"), lone_surrogate("a\\ud800")
    (None, 1)
    """
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _check_str(value: Any, path: str = "") -> str:
    if type(value) is not str:
        if isinstance(value, str):
            return _check_str(str(value), path)
        raise _fail("a string", value, path)
    at = lone_surrogate(value)
    if at is not None:
        msg = f"the text holds a lone surrogate {value[at]!r} at position {at}{_path(path)}, which UTF-8 cannot store"
        raise StoreError(msg)
    return value


def _int_check(dtype: pl.DataType) -> Check:
    info = _INT_RANGES.get(type(dtype))
    lo, hi = info if info is not None else (None, None)

    def check(value: Any, path: str = "") -> int:
        if type(value) is not int:
            if isinstance(value, int) and not isinstance(value, bool):
                value = int(value)
            else:
                raise _fail(f"an integer ({dtype})", value, path)
        if lo is not None and not lo <= value <= hi:
            msg = f"{value} does not fit {dtype} ({lo}..{hi}){_path(path)}"
            raise StoreError(msg)
        return value

    return check


_INT_RANGES = {
    pl.Int8: (-(2**7), 2**7 - 1),
    pl.Int16: (-(2**15), 2**15 - 1),
    pl.Int32: (-(2**31), 2**31 - 1),
    pl.Int64: (-(2**63), 2**63 - 1),
    pl.UInt8: (0, 2**8 - 1),
    pl.UInt16: (0, 2**16 - 1),
    pl.UInt32: (0, 2**32 - 1),
    pl.UInt64: (0, 2**64 - 1),
}


def _check_float(value: Any, path: str = "") -> float:
    if type(value) is float:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _fail("a number", value, path)


def _check_bool(value: Any, path: str = "") -> bool:
    if type(value) is bool:
        return value
    raise _fail("true or false", value, path)


def _instance_check(kind: type | tuple[type, ...], expected: str, *, exclude: type | None = None) -> Check:
    def check(value: Any, path: str = "") -> Any:
        if isinstance(value, kind) and not (exclude is not None and isinstance(value, exclude)):
            return value
        raise _fail(expected, value, path)

    return check


def _list_check(inner: Check, size: int | None = None) -> Check:
    def check(value: Any, path: str = "") -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _fail("a list", value, path)
        if size is not None and len(value) != size:
            msg = f"expected a list of {size} values, got {len(value)}{_path(path)}"
            raise StoreError(msg)
        return [None if item is None else inner(item, f"{path}[{i}]") for i, item in enumerate(value)]

    return check


def _struct_check(fields: Mapping[str, Check]) -> Check:
    names = frozenset(fields)

    def check(value: Any, path: str = "") -> dict[str, Any]:
        if isinstance(value, msgspec.Struct):
            value = msgspec.structs.asdict(value)
        if not isinstance(value, Mapping):
            raise _fail("a mapping of " + ", ".join(fields), value, path)
        extra = [k for k in value if k not in names]
        if extra:
            msg = f"unexpected field {extra[0]!r}{_path(path)}; the fields are {', '.join(fields)}"
            raise StoreError(msg)
        out = {}
        for name, check_field in fields.items():
            item = value.get(name)
            out[name] = None if item is None else check_field(item, f"{path}.{name}")
        return out

    return check


def _enum_check(categories: frozenset[str]) -> Check:
    def check(value: Any, path: str = "") -> str:
        value = _check_str(value, path)
        if value not in categories:
            msg = f"{value!r} is not one of the Enum's categories{_path(path)}"
            raise StoreError(msg)
        return value

    return check


def _null_check(value: Any, path: str = "") -> None:
    raise _fail("null (the column's dtype is Null)", value, path)


@lru_cache(maxsize=512)
def checker(dtype: pl.DataType) -> Check:
    """A function that returns ``value`` fit for a column of ``dtype`` or raises StoreError.

    None is accepted at any depth (columns are nullable). Tuples become lists, integers
    become floats in float columns; nothing else is converted.

    >>> checker(pl.List(pl.Int64))((1, None, 3))
    [1, None, 3]
    >>> checker(pl.List(pl.Int64))([1, "two"])
    Traceback (most recent call last):
    ...
    distilfn.dtypes.StoreError: expected an integer (Int64), got str 'two' at [1]
    >>> checker(pl.String())("\\ud800")
    Traceback (most recent call last):
    ...
    distilfn.dtypes.StoreError: the text holds a lone surrogate '\\ud800' at position 0, which UTF-8 cannot store
    """
    check = _build(dtype)

    def top(value: Any) -> Any:
        return None if value is None else check(value, "")

    return top


def _build(dtype: pl.DataType) -> Check:
    dtype = instance(dtype)
    if isinstance(dtype, pl.String | pl.Categorical):
        return _check_str
    if isinstance(dtype, pl.Enum):
        return _enum_check(frozenset(dtype.categories.to_list()))
    if dtype.is_integer():
        return _int_check(dtype)
    if dtype.is_float():
        return _check_float
    if isinstance(dtype, pl.Boolean):
        return _check_bool
    if isinstance(dtype, pl.Datetime):
        return _instance_check(dt.datetime, "a datetime")
    if isinstance(dtype, pl.Date):
        return _instance_check(dt.date, "a date", exclude=dt.datetime)
    if isinstance(dtype, pl.Time):
        return _instance_check(dt.time, "a time")
    if isinstance(dtype, pl.Duration):
        return _instance_check(dt.timedelta, "a duration")
    if isinstance(dtype, pl.Binary):
        return _instance_check(bytes, "bytes")
    if isinstance(dtype, pl.Decimal):
        return _instance_check((decimal.Decimal, int), "a decimal", exclude=bool)
    if isinstance(dtype, pl.List):
        return _list_check(_build(dtype.inner))
    if isinstance(dtype, pl.Array):
        return _list_check(_build(dtype.inner), dtype.size)
    if isinstance(dtype, pl.Struct):
        return _struct_check({f.name: _build(f.dtype) for f in dtype.fields})
    if isinstance(dtype, pl.Null):
        return _null_check
    msg = f"distilfn cannot store columns of dtype {dtype}"
    raise TypeError(msg)
