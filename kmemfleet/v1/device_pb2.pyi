from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceIdentity(_message.Message):
    __slots__ = ("device_id", "firmware_version", "kernel_release", "arch", "hardware_model", "boot_id", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_RELEASE_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_MODEL_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    firmware_version: str
    kernel_release: str
    arch: str
    hardware_model: str
    boot_id: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, device_id: _Optional[str] = ..., firmware_version: _Optional[str] = ..., kernel_release: _Optional[str] = ..., arch: _Optional[str] = ..., hardware_model: _Optional[str] = ..., boot_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...
