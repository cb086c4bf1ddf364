"""Istio's MERGE: protobuf merge (repeated fields appended, map entries replaced, messages
merged field by field, scalars set), except that a ``google.protobuf.Duration`` is replaced
whole (Istio's pkg/proto/merge: merging {1s 500ms} with {5s} must give 5s, not 5.5s).

A filter's ``typed_config`` is merged inside the Any, as Istio's MergeAnyWithAny does: both
are unpacked, merged, and packed again; a patch whose config is a TypedStruct of the same
type is read into that type first.
"""

from __future__ import annotations

from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message

from controlplane.translate.envoy_filter.values import unpack_any
from controlplane.translate.pb import any_of

_DURATION = "google.protobuf.Duration"
_TYPED_STRUCTS = frozenset({"udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"})


class MergeError(ValueError):
    pass


def merge(dst: Message, src: Message, *, replace_lists: bool = False) -> None:
    """Merge ``src`` into ``dst`` in place (Istio's merge.Merge; MERGE_AND_REPLACE_LIST when
    ``replace_lists``: a repeated field the patch sets replaces the list)."""
    if dst.DESCRIPTOR.full_name != src.DESCRIPTOR.full_name:
        raise MergeError(f"cannot merge {src.DESCRIPTOR.full_name} into {dst.DESCRIPTOR.full_name}")
    if dst.DESCRIPTOR.full_name == _DURATION:
        dst.CopyFrom(src)
        return
    for fd, value in src.ListFields():
        if fd.is_repeated:
            target = getattr(dst, fd.name)
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                value_fd = fd.message_type.fields_by_name["value"]
                for key in value:
                    if value_fd.message_type is not None:
                        target[key].CopyFrom(value[key])
                    else:
                        target[key] = value[key]
                continue
            if replace_lists:
                del target[:]
            if fd.message_type is not None:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif fd.message_type is not None:
            sub = getattr(dst, fd.name)
            sub.SetInParent()  # an empty message in the patch still selects its oneof case
            merge(sub, value, replace_lists=replace_lists)
        else:
            setattr(dst, fd.name, value)


def merge_any(dst: any_pb2.Any, src: any_pb2.Any) -> any_pb2.Any:
    """Istio's MergeAnyWithAny: ``src``'s config merged into ``dst``'s, packed again."""
    base = unpack_any(dst)
    if base is None:
        raise MergeError(f"cannot read the existing config of type {dst.type_url!r}")
    patch = _patch_message(src, base)
    merge(base, patch)
    return any_of(base)


def _patch_message(src: any_pb2.Any, like: Message) -> Message:
    name = like.DESCRIPTOR.full_name
    src_name = src.type_url.rsplit("/", 1)[-1]
    inner = unpack_any(src)
    if inner is None:
        raise MergeError(f"cannot read the patch's config of type {src.type_url!r}")
    if src_name in _TYPED_STRUCTS:
        inner_type = getattr(inner, "type_url", "").rsplit("/", 1)[-1]
        if inner_type != name:
            raise MergeError(f"the patch's TypedStruct holds {inner_type!r}, the filter's config is {name!r}")
        out = type(like)()
        json_format.ParseDict(json_format.MessageToDict(inner.value), out)
        return out
    if src_name != name:
        # Istio swaps the type URL (v2 -> v3 configs); the bytes are then read as the
        # filter's own type, which is only right when the two types agree field by field.
        out = type(like)()
        out.ParseFromString(src.value)
        return out
    return inner
