from kmemfleet.v1 import device_pb2 as _device_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StackSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STACK_SOURCE_UNSPECIFIED: _ClassVar[StackSource]
    STACK_SOURCE_MLT: _ClassVar[StackSource]
    STACK_SOURCE_ALLOCINFO: _ClassVar[StackSource]
    STACK_SOURCE_MEM_LEAKS: _ClassVar[StackSource]
    STACK_SOURCE_KMALLOC: _ClassVar[StackSource]
    STACK_SOURCE_VMALLOCINFO: _ClassVar[StackSource]

class MemoryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_KIND_UNSPECIFIED: _ClassVar[MemoryKind]
    MEMORY_KIND_SLAB: _ClassVar[MemoryKind]
    MEMORY_KIND_PAGES: _ClassVar[MemoryKind]
    MEMORY_KIND_VMALLOC: _ClassVar[MemoryKind]
STACK_SOURCE_UNSPECIFIED: StackSource
STACK_SOURCE_MLT: StackSource
STACK_SOURCE_ALLOCINFO: StackSource
STACK_SOURCE_MEM_LEAKS: StackSource
STACK_SOURCE_KMALLOC: StackSource
STACK_SOURCE_VMALLOCINFO: StackSource
MEMORY_KIND_UNSPECIFIED: MemoryKind
MEMORY_KIND_SLAB: MemoryKind
MEMORY_KIND_PAGES: MemoryKind
MEMORY_KIND_VMALLOC: MemoryKind

class SlabCache(_message.Message):
    __slots__ = ("name", "occurrence", "active_objs", "num_objs", "objsize", "objperslab", "pagesperslab", "limit", "batchcount", "sharedfactor", "active_slabs", "num_slabs", "sharedavail", "statistics")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OCCURRENCE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_OBJS_FIELD_NUMBER: _ClassVar[int]
    NUM_OBJS_FIELD_NUMBER: _ClassVar[int]
    OBJSIZE_FIELD_NUMBER: _ClassVar[int]
    OBJPERSLAB_FIELD_NUMBER: _ClassVar[int]
    PAGESPERSLAB_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BATCHCOUNT_FIELD_NUMBER: _ClassVar[int]
    SHAREDFACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SLABS_FIELD_NUMBER: _ClassVar[int]
    NUM_SLABS_FIELD_NUMBER: _ClassVar[int]
    SHAREDAVAIL_FIELD_NUMBER: _ClassVar[int]
    STATISTICS_FIELD_NUMBER: _ClassVar[int]
    name: str
    occurrence: int
    active_objs: int
    num_objs: int
    objsize: int
    objperslab: int
    pagesperslab: int
    limit: int
    batchcount: int
    sharedfactor: int
    active_slabs: int
    num_slabs: int
    sharedavail: int
    statistics: SlabStatistics
    def __init__(self, name: _Optional[str] = ..., occurrence: _Optional[int] = ..., active_objs: _Optional[int] = ..., num_objs: _Optional[int] = ..., objsize: _Optional[int] = ..., objperslab: _Optional[int] = ..., pagesperslab: _Optional[int] = ..., limit: _Optional[int] = ..., batchcount: _Optional[int] = ..., sharedfactor: _Optional[int] = ..., active_slabs: _Optional[int] = ..., num_slabs: _Optional[int] = ..., sharedavail: _Optional[int] = ..., statistics: _Optional[_Union[SlabStatistics, _Mapping]] = ...) -> None: ...

class SlabStatistics(_message.Message):
    __slots__ = ("listallocs", "maxobjs", "grown", "reaped", "error", "maxfreeable", "nodeallocs", "remotefrees", "alienoverflow", "allochit", "allocmiss", "freehit", "freemiss")
    LISTALLOCS_FIELD_NUMBER: _ClassVar[int]
    MAXOBJS_FIELD_NUMBER: _ClassVar[int]
    GROWN_FIELD_NUMBER: _ClassVar[int]
    REAPED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MAXFREEABLE_FIELD_NUMBER: _ClassVar[int]
    NODEALLOCS_FIELD_NUMBER: _ClassVar[int]
    REMOTEFREES_FIELD_NUMBER: _ClassVar[int]
    ALIENOVERFLOW_FIELD_NUMBER: _ClassVar[int]
    ALLOCHIT_FIELD_NUMBER: _ClassVar[int]
    ALLOCMISS_FIELD_NUMBER: _ClassVar[int]
    FREEHIT_FIELD_NUMBER: _ClassVar[int]
    FREEMISS_FIELD_NUMBER: _ClassVar[int]
    listallocs: int
    maxobjs: int
    grown: int
    reaped: int
    error: int
    maxfreeable: int
    nodeallocs: int
    remotefrees: int
    alienoverflow: int
    allochit: int
    allocmiss: int
    freehit: int
    freemiss: int
    def __init__(self, listallocs: _Optional[int] = ..., maxobjs: _Optional[int] = ..., grown: _Optional[int] = ..., reaped: _Optional[int] = ..., error: _Optional[int] = ..., maxfreeable: _Optional[int] = ..., nodeallocs: _Optional[int] = ..., remotefrees: _Optional[int] = ..., alienoverflow: _Optional[int] = ..., allochit: _Optional[int] = ..., allocmiss: _Optional[int] = ..., freehit: _Optional[int] = ..., freemiss: _Optional[int] = ...) -> None: ...

class SlabCacheKey(_message.Message):
    __slots__ = ("name", "occurrence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OCCURRENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    occurrence: int
    def __init__(self, name: _Optional[str] = ..., occurrence: _Optional[int] = ...) -> None: ...

class BuddyZone(_message.Message):
    __slots__ = ("node", "zone", "free_blocks")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    FREE_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    node: int
    zone: str
    free_blocks: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, node: _Optional[int] = ..., zone: _Optional[str] = ..., free_blocks: _Optional[_Iterable[int]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("function", "offset", "length", "module", "address", "file", "line")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    function: str
    offset: int
    length: int
    module: str
    address: int
    file: str
    line: int
    def __init__(self, function: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., module: _Optional[str] = ..., address: _Optional[int] = ..., file: _Optional[str] = ..., line: _Optional[int] = ...) -> None: ...

class StackDefinition(_message.Message):
    __slots__ = ("stack_id", "frames", "module", "source", "kind")
    STACK_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    stack_id: int
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    module: str
    source: StackSource
    kind: MemoryKind
    def __init__(self, stack_id: _Optional[int] = ..., frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ..., module: _Optional[str] = ..., source: _Optional[_Union[StackSource, str]] = ..., kind: _Optional[_Union[MemoryKind, str]] = ...) -> None: ...

class StackSample(_message.Message):
    __slots__ = ("stack_id", "bytes", "objects", "allocs", "frees", "bytes_upper", "alloc_bytes")
    STACK_ID_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    ALLOCS_FIELD_NUMBER: _ClassVar[int]
    FREES_FIELD_NUMBER: _ClassVar[int]
    BYTES_UPPER_FIELD_NUMBER: _ClassVar[int]
    ALLOC_BYTES_FIELD_NUMBER: _ClassVar[int]
    stack_id: int
    bytes: int
    objects: int
    allocs: int
    frees: int
    bytes_upper: int
    alloc_bytes: int
    def __init__(self, stack_id: _Optional[int] = ..., bytes: _Optional[int] = ..., objects: _Optional[int] = ..., allocs: _Optional[int] = ..., frees: _Optional[int] = ..., bytes_upper: _Optional[int] = ..., alloc_bytes: _Optional[int] = ...) -> None: ...

class StackSourceInfo(_message.Message):
    __slots__ = ("source", "version", "estimated", "tracked_objects", "tracked_bytes", "dropped", "untracked_frees", "missed_frees", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    TRACKED_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    TRACKED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    UNTRACKED_FREES_FIELD_NUMBER: _ClassVar[int]
    MISSED_FREES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    source: StackSource
    version: str
    estimated: bool
    tracked_objects: int
    tracked_bytes: int
    dropped: int
    untracked_frees: int
    missed_frees: int
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, source: _Optional[_Union[StackSource, str]] = ..., version: _Optional[str] = ..., estimated: _Optional[bool] = ..., tracked_objects: _Optional[int] = ..., tracked_bytes: _Optional[int] = ..., dropped: _Optional[int] = ..., untracked_frees: _Optional[int] = ..., missed_frees: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ParseIssue(_message.Message):
    __slots__ = ("file", "line", "reason")
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    file: str
    line: int
    reason: str
    def __init__(self, file: _Optional[str] = ..., line: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("device", "seq", "captured_at_ns", "uptime_seconds", "base_seq", "slab_caches", "removed_slab_caches", "meminfo", "buddyinfo", "stack_definitions", "stack_samples", "removed_stacks", "stack_source", "parse_issues", "spool_dropped")
    class MeminfoEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BASE_SEQ_FIELD_NUMBER: _ClassVar[int]
    SLAB_CACHES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_SLAB_CACHES_FIELD_NUMBER: _ClassVar[int]
    MEMINFO_FIELD_NUMBER: _ClassVar[int]
    BUDDYINFO_FIELD_NUMBER: _ClassVar[int]
    STACK_DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    STACK_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_STACKS_FIELD_NUMBER: _ClassVar[int]
    STACK_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PARSE_ISSUES_FIELD_NUMBER: _ClassVar[int]
    SPOOL_DROPPED_FIELD_NUMBER: _ClassVar[int]
    device: _device_pb2.DeviceIdentity
    seq: int
    captured_at_ns: int
    uptime_seconds: float
    base_seq: int
    slab_caches: _containers.RepeatedCompositeFieldContainer[SlabCache]
    removed_slab_caches: _containers.RepeatedCompositeFieldContainer[SlabCacheKey]
    meminfo: _containers.ScalarMap[str, int]
    buddyinfo: _containers.RepeatedCompositeFieldContainer[BuddyZone]
    stack_definitions: _containers.RepeatedCompositeFieldContainer[StackDefinition]
    stack_samples: _containers.RepeatedCompositeFieldContainer[StackSample]
    removed_stacks: _containers.RepeatedScalarFieldContainer[int]
    stack_source: StackSourceInfo
    parse_issues: _containers.RepeatedCompositeFieldContainer[ParseIssue]
    spool_dropped: int
    def __init__(self, device: _Optional[_Union[_device_pb2.DeviceIdentity, _Mapping]] = ..., seq: _Optional[int] = ..., captured_at_ns: _Optional[int] = ..., uptime_seconds: _Optional[float] = ..., base_seq: _Optional[int] = ..., slab_caches: _Optional[_Iterable[_Union[SlabCache, _Mapping]]] = ..., removed_slab_caches: _Optional[_Iterable[_Union[SlabCacheKey, _Mapping]]] = ..., meminfo: _Optional[_Mapping[str, int]] = ..., buddyinfo: _Optional[_Iterable[_Union[BuddyZone, _Mapping]]] = ..., stack_definitions: _Optional[_Iterable[_Union[StackDefinition, _Mapping]]] = ..., stack_samples: _Optional[_Iterable[_Union[StackSample, _Mapping]]] = ..., removed_stacks: _Optional[_Iterable[int]] = ..., stack_source: _Optional[_Union[StackSourceInfo, _Mapping]] = ..., parse_issues: _Optional[_Iterable[_Union[ParseIssue, _Mapping]]] = ..., spool_dropped: _Optional[int] = ...) -> None: ...
