from kmemfleet.v1 import device_pb2 as _device_pb2
from kmemfleet.v1 import snapshot_pb2 as _snapshot_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LeakSubject(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEAK_SUBJECT_UNSPECIFIED: _ClassVar[LeakSubject]
    LEAK_SUBJECT_STACK: _ClassVar[LeakSubject]
    LEAK_SUBJECT_SLAB_CACHE: _ClassVar[LeakSubject]
    LEAK_SUBJECT_MEMINFO: _ClassVar[LeakSubject]
LEAK_SUBJECT_UNSPECIFIED: LeakSubject
LEAK_SUBJECT_STACK: LeakSubject
LEAK_SUBJECT_SLAB_CACHE: LeakSubject
LEAK_SUBJECT_MEMINFO: LeakSubject

class ListDevicesRequest(_message.Message):
    __slots__ = ("firmware_version", "labels", "limit")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    firmware_version: str
    labels: _containers.ScalarMap[str, str]
    limit: int
    def __init__(self, firmware_version: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class DeviceSummary(_message.Message):
    __slots__ = ("device", "last_seen_ns", "snapshots")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    device: _device_pb2.DeviceIdentity
    last_seen_ns: int
    snapshots: int
    def __init__(self, device: _Optional[_Union[_device_pb2.DeviceIdentity, _Mapping]] = ..., last_seen_ns: _Optional[int] = ..., snapshots: _Optional[int] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceSummary]
    def __init__(self, devices: _Optional[_Iterable[_Union[DeviceSummary, _Mapping]]] = ...) -> None: ...

class DeviceRequest(_message.Message):
    __slots__ = ("device_id", "boot_id")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    boot_id: str
    def __init__(self, device_id: _Optional[str] = ..., boot_id: _Optional[str] = ...) -> None: ...

class DeviceSlabsResponse(_message.Message):
    __slots__ = ("device", "captured_at_ns", "seq", "slab_caches", "meminfo")
    class MeminfoEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SLAB_CACHES_FIELD_NUMBER: _ClassVar[int]
    MEMINFO_FIELD_NUMBER: _ClassVar[int]
    device: _device_pb2.DeviceIdentity
    captured_at_ns: int
    seq: int
    slab_caches: _containers.RepeatedCompositeFieldContainer[_snapshot_pb2.SlabCache]
    meminfo: _containers.ScalarMap[str, int]
    def __init__(self, device: _Optional[_Union[_device_pb2.DeviceIdentity, _Mapping]] = ..., captured_at_ns: _Optional[int] = ..., seq: _Optional[int] = ..., slab_caches: _Optional[_Iterable[_Union[_snapshot_pb2.SlabCache, _Mapping]]] = ..., meminfo: _Optional[_Mapping[str, int]] = ...) -> None: ...

class StackState(_message.Message):
    __slots__ = ("stack", "sample")
    STACK_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    stack: _snapshot_pb2.StackDefinition
    sample: _snapshot_pb2.StackSample
    def __init__(self, stack: _Optional[_Union[_snapshot_pb2.StackDefinition, _Mapping]] = ..., sample: _Optional[_Union[_snapshot_pb2.StackSample, _Mapping]] = ...) -> None: ...

class DeviceStacksResponse(_message.Message):
    __slots__ = ("device", "captured_at_ns", "seq", "stacks", "stack_source")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STACKS_FIELD_NUMBER: _ClassVar[int]
    STACK_SOURCE_FIELD_NUMBER: _ClassVar[int]
    device: _device_pb2.DeviceIdentity
    captured_at_ns: int
    seq: int
    stacks: _containers.RepeatedCompositeFieldContainer[StackState]
    stack_source: _snapshot_pb2.StackSourceInfo
    def __init__(self, device: _Optional[_Union[_device_pb2.DeviceIdentity, _Mapping]] = ..., captured_at_ns: _Optional[int] = ..., seq: _Optional[int] = ..., stacks: _Optional[_Iterable[_Union[StackState, _Mapping]]] = ..., stack_source: _Optional[_Union[_snapshot_pb2.StackSourceInfo, _Mapping]] = ...) -> None: ...

class StackSeriesRequest(_message.Message):
    __slots__ = ("device_id", "stack_id", "boot_id")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STACK_ID_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    stack_id: int
    boot_id: str
    def __init__(self, device_id: _Optional[str] = ..., stack_id: _Optional[int] = ..., boot_id: _Optional[str] = ...) -> None: ...

class SeriesPoint(_message.Message):
    __slots__ = ("captured_at_ns", "bytes", "objects")
    CAPTURED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    captured_at_ns: int
    bytes: int
    objects: int
    def __init__(self, captured_at_ns: _Optional[int] = ..., bytes: _Optional[int] = ..., objects: _Optional[int] = ...) -> None: ...

class StackSeriesResponse(_message.Message):
    __slots__ = ("stack", "boot_id", "points")
    STACK_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    stack: _snapshot_pb2.StackDefinition
    boot_id: str
    points: _containers.RepeatedCompositeFieldContainer[SeriesPoint]
    def __init__(self, stack: _Optional[_Union[_snapshot_pb2.StackDefinition, _Mapping]] = ..., boot_id: _Optional[str] = ..., points: _Optional[_Iterable[_Union[SeriesPoint, _Mapping]]] = ...) -> None: ...

class LeakEntry(_message.Message):
    __slots__ = ("subject", "stack", "slab_cache", "signature", "devices_observed", "devices_leaking", "share_leaking", "median_slope_bytes_per_hour", "p90_slope_bytes_per_hour", "total_leaked_bytes", "projected_hours_to_exhaust", "first_seen_firmware", "score", "confidence", "verdict", "projected_level_bytes", "evidence", "kind", "meminfo_series")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    STACK_FIELD_NUMBER: _ClassVar[int]
    SLAB_CACHE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_OBSERVED_FIELD_NUMBER: _ClassVar[int]
    DEVICES_LEAKING_FIELD_NUMBER: _ClassVar[int]
    SHARE_LEAKING_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_SLOPE_BYTES_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    P90_SLOPE_BYTES_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LEAKED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_HOURS_TO_EXHAUST_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    PROJECTED_LEVEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMINFO_SERIES_FIELD_NUMBER: _ClassVar[int]
    subject: LeakSubject
    stack: _snapshot_pb2.StackDefinition
    slab_cache: str
    signature: str
    devices_observed: int
    devices_leaking: int
    share_leaking: float
    median_slope_bytes_per_hour: float
    p90_slope_bytes_per_hour: float
    total_leaked_bytes: float
    projected_hours_to_exhaust: float
    first_seen_firmware: str
    score: float
    confidence: float
    verdict: str
    projected_level_bytes: float
    evidence: str
    kind: _snapshot_pb2.MemoryKind
    meminfo_series: str
    def __init__(self, subject: _Optional[_Union[LeakSubject, str]] = ..., stack: _Optional[_Union[_snapshot_pb2.StackDefinition, _Mapping]] = ..., slab_cache: _Optional[str] = ..., signature: _Optional[str] = ..., devices_observed: _Optional[int] = ..., devices_leaking: _Optional[int] = ..., share_leaking: _Optional[float] = ..., median_slope_bytes_per_hour: _Optional[float] = ..., p90_slope_bytes_per_hour: _Optional[float] = ..., total_leaked_bytes: _Optional[float] = ..., projected_hours_to_exhaust: _Optional[float] = ..., first_seen_firmware: _Optional[str] = ..., score: _Optional[float] = ..., confidence: _Optional[float] = ..., verdict: _Optional[str] = ..., projected_level_bytes: _Optional[float] = ..., evidence: _Optional[str] = ..., kind: _Optional[_Union[_snapshot_pb2.MemoryKind, str]] = ..., meminfo_series: _Optional[str] = ...) -> None: ...

class LeaksRequest(_message.Message):
    __slots__ = ("firmware_version", "top", "include_saturating", "include_unattributed")
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SATURATING_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNATTRIBUTED_FIELD_NUMBER: _ClassVar[int]
    firmware_version: str
    top: int
    include_saturating: bool
    include_unattributed: bool
    def __init__(self, firmware_version: _Optional[str] = ..., top: _Optional[int] = ..., include_saturating: _Optional[bool] = ..., include_unattributed: _Optional[bool] = ...) -> None: ...

class Freshness(_message.Message):
    __slots__ = ("analysed_through_ns", "pending_snapshots", "answered_at_ns")
    ANALYSED_THROUGH_NS_FIELD_NUMBER: _ClassVar[int]
    PENDING_SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    analysed_through_ns: int
    pending_snapshots: int
    answered_at_ns: int
    def __init__(self, analysed_through_ns: _Optional[int] = ..., pending_snapshots: _Optional[int] = ..., answered_at_ns: _Optional[int] = ...) -> None: ...

class LeaksResponse(_message.Message):
    __slots__ = ("firmware_version", "devices", "entries", "saturating", "freshness", "unattributed")
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SATURATING_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    UNATTRIBUTED_FIELD_NUMBER: _ClassVar[int]
    firmware_version: str
    devices: int
    entries: _containers.RepeatedCompositeFieldContainer[LeakEntry]
    saturating: _containers.RepeatedCompositeFieldContainer[LeakEntry]
    freshness: Freshness
    unattributed: _containers.RepeatedCompositeFieldContainer[LeakEntry]
    def __init__(self, firmware_version: _Optional[str] = ..., devices: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[LeakEntry, _Mapping]]] = ..., saturating: _Optional[_Iterable[_Union[LeakEntry, _Mapping]]] = ..., freshness: _Optional[_Union[Freshness, _Mapping]] = ..., unattributed: _Optional[_Iterable[_Union[LeakEntry, _Mapping]]] = ...) -> None: ...

class DiffRequest(_message.Message):
    __slots__ = ("base_firmware", "target_firmware", "top")
    BASE_FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    base_firmware: str
    target_firmware: str
    top: int
    def __init__(self, base_firmware: _Optional[str] = ..., target_firmware: _Optional[str] = ..., top: _Optional[int] = ...) -> None: ...

class DiffEntry(_message.Message):
    __slots__ = ("change", "signature", "base", "target")
    class Change(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CHANGE_UNSPECIFIED: _ClassVar[DiffEntry.Change]
        REGRESSION: _ClassVar[DiffEntry.Change]
        FIXED: _ClassVar[DiffEntry.Change]
        UNCHANGED: _ClassVar[DiffEntry.Change]
    CHANGE_UNSPECIFIED: DiffEntry.Change
    REGRESSION: DiffEntry.Change
    FIXED: DiffEntry.Change
    UNCHANGED: DiffEntry.Change
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    change: DiffEntry.Change
    signature: str
    base: LeakEntry
    target: LeakEntry
    def __init__(self, change: _Optional[_Union[DiffEntry.Change, str]] = ..., signature: _Optional[str] = ..., base: _Optional[_Union[LeakEntry, _Mapping]] = ..., target: _Optional[_Union[LeakEntry, _Mapping]] = ...) -> None: ...

class Cohort(_message.Message):
    __slots__ = ("devices", "median_hours")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_HOURS_FIELD_NUMBER: _ClassVar[int]
    devices: int
    median_hours: float
    def __init__(self, devices: _Optional[int] = ..., median_hours: _Optional[float] = ...) -> None: ...

class DiffResponse(_message.Message):
    __slots__ = ("base_firmware", "target_firmware", "entries", "freshness", "base_cohort", "target_cohort")
    BASE_FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    BASE_COHORT_FIELD_NUMBER: _ClassVar[int]
    TARGET_COHORT_FIELD_NUMBER: _ClassVar[int]
    base_firmware: str
    target_firmware: str
    entries: _containers.RepeatedCompositeFieldContainer[DiffEntry]
    freshness: Freshness
    base_cohort: Cohort
    target_cohort: Cohort
    def __init__(self, base_firmware: _Optional[str] = ..., target_firmware: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[DiffEntry, _Mapping]]] = ..., freshness: _Optional[_Union[Freshness, _Mapping]] = ..., base_cohort: _Optional[_Union[Cohort, _Mapping]] = ..., target_cohort: _Optional[_Union[Cohort, _Mapping]] = ...) -> None: ...
