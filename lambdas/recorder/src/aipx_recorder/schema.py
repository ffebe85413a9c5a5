"""Protobuf descriptor -> Arrow schema, and protobuf messages -> Arrow columns. Plain code, no I/O.

Type mapping (faithful, so the lake answers the same questions the messages do):

    int32/sint32/sfixed32 -> int32      uint32/fixed32 -> uint32     bool   -> bool
    int64/sint64/sfixed64 -> int64      uint64/fixed64 -> uint64     string -> string (utf8)
    double -> float64   float -> float32   bytes -> binary
    enum            -> string: the value's name ("SIDE_BUY"); a number the contract does not know is kept as
                       its decimal text, never dropped. Parquet dictionary-encodes these columns anyway, and a
                       plain string reads the same in every engine.
    aipx.v1.Decimal -> decimal128(38, 18): exact, and summable by query engines without parsing; 20 integer
                       and 18 fractional digits cover every price/quantity/fee we carry (satoshis: 8,
                       wei: 18). A value that does not fit exactly is an error for that record (dead-lettered
                       with the reason), never rounded. Unset (empty string) -> null.
    message         -> struct, null when the field is not set (proto3 message fields have presence)
    oneof           -> one nullable struct/column per member: only the member that is set is non-null
    repeated        -> list<element>;   map<k, v> -> map<k, v>
Scalars without presence (plain proto3) are never null: 0/""/false are the values the reader of the
message sees too. Scalars with presence (proto3 `optional`, oneof members) are null when unset.

Columns are built a field at a time over the whole batch (attribute access in C-level loops, conversion in
Arrow), not record by record: the recorder's throughput depends on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from operator import attrgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from aipx.money import InvalidDecimalError, format_decimal, parse_decimal
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

DECIMAL_MESSAGE = "aipx.v1.Decimal"
DECIMAL_TYPE = pa.decimal128(38, 18)
_MAX_DEPTH = 32

_SCALARS: dict[int, pa.DataType] = {
    FieldDescriptor.TYPE_DOUBLE: pa.float64(),
    FieldDescriptor.TYPE_FLOAT: pa.float32(),
    FieldDescriptor.TYPE_INT64: pa.int64(),
    FieldDescriptor.TYPE_SINT64: pa.int64(),
    FieldDescriptor.TYPE_SFIXED64: pa.int64(),
    FieldDescriptor.TYPE_UINT64: pa.uint64(),
    FieldDescriptor.TYPE_FIXED64: pa.uint64(),
    FieldDescriptor.TYPE_INT32: pa.int32(),
    FieldDescriptor.TYPE_SINT32: pa.int32(),
    FieldDescriptor.TYPE_SFIXED32: pa.int32(),
    FieldDescriptor.TYPE_UINT32: pa.uint32(),
    FieldDescriptor.TYPE_FIXED32: pa.uint32(),
    FieldDescriptor.TYPE_BOOL: pa.bool_(),
    FieldDescriptor.TYPE_STRING: pa.string(),
    FieldDescriptor.TYPE_BYTES: pa.binary(),
}


class SchemaError(TypeError):
    """A protobuf type that cannot be mapped (recursive beyond the depth limit, unknown field type)."""


class ValueOutOfRangeError(ValueError):
    """Values that cannot be stored exactly (e.g. a Decimal beyond decimal128(38, 18)); rows are indexes."""

    def __init__(self, message: str, rows: Sequence[int]) -> None:
        super().__init__(message)
        self.rows = list(rows)


def _message_of(field: FieldDescriptor) -> Descriptor:
    if field.message_type is None:
        raise SchemaError(f"{field.full_name} is not a message field")
    return field.message_type


def _enum_of(field: FieldDescriptor) -> EnumDescriptor:
    if field.enum_type is None:
        raise SchemaError(f"{field.full_name} is not an enum field")
    return field.enum_type


def _is_map(field: FieldDescriptor) -> bool:
    mt = field.message_type
    return bool(field.is_repeated and mt is not None and mt.GetOptions().map_entry)


def _has_presence(field: FieldDescriptor) -> bool:
    return bool(field.has_presence)


def _element_type(field: FieldDescriptor, depth: int) -> pa.DataType:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return pa.string()
    if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        if _message_of(field).full_name == DECIMAL_MESSAGE:
            return DECIMAL_TYPE
        return pa.struct(_fields(_message_of(field), depth + 1))
    try:
        return _SCALARS[field.type]
    except KeyError:
        raise SchemaError(f"{field.full_name}: unsupported protobuf field type {field.type}") from None


def arrow_type(field: FieldDescriptor, depth: int = 0) -> pa.DataType:
    """The Arrow type of one protobuf field."""
    if _is_map(field):
        entry = _message_of(field)
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        return pa.map_(_element_type(key, depth), _element_type(value, depth))
    element = _element_type(field, depth)
    if field.is_repeated:
        return pa.list_(element)
    return element


def _nullable(field: FieldDescriptor) -> bool:
    if field.is_repeated:
        return False
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return True
    return _has_presence(field)


def _fields(descriptor: Descriptor, depth: int = 0) -> list[pa.Field]:
    if depth > _MAX_DEPTH:
        raise SchemaError(f"{descriptor.full_name}: nesting deeper than {_MAX_DEPTH} (recursive message?)")
    # Inside a struct every child is nullable: a null struct has null children (Parquet requires it).
    return [
        pa.field(f.name, arrow_type(f, depth), nullable=depth > 0 or _nullable(f)) for f in descriptor.fields
    ]


@cache
def arrow_schema(descriptor: Descriptor) -> pa.Schema:
    """The Arrow schema of a message type (one column per top-level field)."""
    return pa.schema(_fields(descriptor), metadata={"aipx.protobuf": descriptor.full_name})


# --- conversion -------------------------------------------------------------------------------------------

Values = Callable[[list[Any]], pa.Array]
"""Converts a list of one field's values (scalars, sub-messages, repeated containers, maps) to an array."""


def _enum_names(enum: EnumDescriptor, numbers: pa.Array) -> pa.Array:
    """Enum numbers -> names; unknown numbers keep their decimal text."""
    distinct = pc.unique(numbers).to_pylist()
    names = {v.number: v.name for v in enum.values}
    dictionary = pa.array([names.get(n, str(n)) for n in distinct], pa.string())
    indices = pc.index_in(numbers, value_set=pa.array(distinct, numbers.type))
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


# Plain positional text within decimal128(38, 18) (aipx.money.is_plain_decimal, in RE2 for Arrow): a column
# matching it throughout is cast in one vectorised step.
_PLAIN_DECIMAL = r"^-?[0-9]{1,20}(\.[0-9]{1,18})?$"


def decimals(texts: list[str]) -> pa.Array:
    """Decimal strings ('' = unset) -> decimal128(38, 18); ValueOutOfRangeError names rows that do not fit.

    Nothing reaches pyarrow's decimal cast unchecked (it crashed the process on '1e-9999999'): a column of
    plain texts within the bounds is cast as is; otherwise every text goes through aipx.money.parse_decimal
    and the rows it refuses are named (the recorder dead-letters them), the others cast in positional form.
    """
    strings = pa.array(texts, pa.string())
    strings = pc.if_else(pc.equal(strings, ""), pa.scalar(None, pa.string()), strings)
    plain = pc.match_substring_regex(strings, _PLAIN_DECIMAL)
    if pc.all(plain).as_py() is not False:  # every value plain (nulls: unset)
        return strings.cast(DECIMAL_TYPE)
    bad: list[int] = []
    positional: list[str | None] = []
    for row, text in enumerate(texts):
        if not text:
            positional.append(None)
            continue
        try:
            positional.append(format_decimal(parse_decimal(text, field="decimal")))
        except InvalidDecimalError:
            bad.append(row)
            positional.append(None)
    if bad:
        raise ValueOutOfRangeError(
            "Decimal value(s) not exactly representable as decimal128(38, 18): "
            + ", ".join(repr(texts[i][:80]) for i in bad[:5]),
            bad,
        )
    return pa.array(positional, pa.string()).cast(DECIMAL_TYPE)


def _scalar_values(field: FieldDescriptor, depth: int) -> Values:
    """Converter of a singular element's values (what the field holds, never absent)."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum = _enum_of(field)
        return lambda values: _enum_names(enum, pa.array(values, pa.int32()))
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if _message_of(field).full_name == DECIMAL_MESSAGE:
            get_value = attrgetter("value")
            return lambda values: decimals(list(map(get_value, values)))
        return _struct_values(_message_of(field), depth + 1)
    arrow = _SCALARS[field.type]
    return lambda values: pa.array(values, arrow)


def _field_values(field: FieldDescriptor, depth: int) -> Values:
    """Converter of a field's values: repeated containers and maps included."""
    if _is_map(field):
        entry = _message_of(field)
        key_values = _scalar_values(entry.fields_by_name["key"], depth)
        item_values = _scalar_values(entry.fields_by_name["value"], depth)

        def maps(values: list[Any]) -> pa.Array:
            offsets = [0]
            keys: list[Any] = []
            items: list[Any] = []
            for entries in values:
                for k in sorted(entries):  # deterministic order: same message, same bytes on disk
                    keys.append(k)
                    items.append(entries[k])
                offsets.append(len(keys))
            return pa.MapArray.from_arrays(
                pa.array(offsets, pa.int32()), key_values(keys), item_values(items)
            )

        return maps
    element = _scalar_values(field, depth)
    if not field.is_repeated:
        return element

    def lists(values: list[Any]) -> pa.Array:
        offsets = [0]
        flat: list[Any] = []
        for items in values:
            flat.extend(items)
            offsets.append(len(flat))
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), element(flat))

    return lists


def _scatter(array: pa.Array, present: list[bool]) -> pa.Array:
    """`array` holds the values of the present rows: spread them over all rows, null elsewhere."""
    indices: list[int | None] = []
    k = 0
    for p in present:
        if p:
            indices.append(k)
            k += 1
        else:
            indices.append(None)
    return array.take(pa.array(indices, pa.int32()))


def _struct_values(descriptor: Descriptor, depth: int) -> Values:
    columns = _message_columns(descriptor, depth)
    fields = _fields(descriptor, depth)
    return lambda messages: pa.StructArray.from_arrays(columns(messages), fields=fields)


def _message_columns(descriptor: Descriptor, depth: int) -> Callable[[list[Any]], list[pa.Array]]:
    """Converter: messages (all present) -> one array per field of theirs.

    Presence is read once per oneof (WhichOneof) and once per singular message field (HasField); only the
    rows that hold a value are converted, then spread back with nulls.
    """
    if depth > _MAX_DEPTH:
        raise SchemaError(f"{descriptor.full_name}: nesting deeper than {_MAX_DEPTH} (recursive message?)")
    plan: list[tuple[str, pa.DataType, str | None, bool, Values]] = []
    for f in descriptor.fields:
        oneof = f.containing_oneof.name if f.containing_oneof is not None else None
        has_field = oneof is None and not f.is_repeated and f.type == FieldDescriptor.TYPE_MESSAGE
        if has_field and _message_of(f).full_name == DECIMAL_MESSAGE:
            has_field = False  # an unset Decimal reads as "" and becomes null on its own
        plan.append((f.name, arrow_type(f, depth), oneof, has_field, _field_values(f, depth)))
    oneofs = sorted({o for _, _, o, _, _ in plan if o is not None})

    def convert(messages: list[Any]) -> list[pa.Array]:
        n = len(messages)
        which = {o: [m.WhichOneof(o) for m in messages] for o in oneofs}
        arrays: list[pa.Array] = []
        for name, arrow, oneof, has_field, values in plan:
            get = attrgetter(name)
            present: list[bool] | None = None
            if oneof is not None:
                present = [w == name for w in which[oneof]]
            elif has_field:
                present = [m.HasField(name) for m in messages]
            if present is None or all(present):
                arrays.append(values(list(map(get, messages))))
            elif not any(present):
                arrays.append(pa.nulls(n, arrow))
            else:
                subset = [get(m) for m, p in zip(messages, present, strict=True) if p]
                arrays.append(_scatter(values(subset), present))
        return arrays

    return convert


@cache
def _top_level(descriptor: Descriptor) -> Callable[[list[Any]], list[pa.Array]]:
    return _message_columns(descriptor, 0)


def to_table(descriptor: Descriptor, messages: Sequence[Message]) -> pa.Table:
    """The messages (all of type `descriptor`) as a table with `arrow_schema(descriptor)`."""
    return pa.Table.from_arrays(_top_level(descriptor)(list(messages)), schema=arrow_schema(descriptor))
