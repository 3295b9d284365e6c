from kmemfleet.v1 import snapshot_pb2 as _snapshot_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ack(_message.Message):
    __slots__ = ("device_id", "boot_id", "seq", "result", "code", "message", "next_seq")
    class Result(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RESULT_UNSPECIFIED: _ClassVar[Ack.Result]
        STORED: _ClassVar[Ack.Result]
        DUPLICATE: _ClassVar[Ack.Result]
        REJECTED: _ClassVar[Ack.Result]
    RESULT_UNSPECIFIED: Ack.Result
    STORED: Ack.Result
    DUPLICATE: Ack.Result
    REJECTED: Ack.Result
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    boot_id: str
    seq: int
    result: Ack.Result
    code: int
    message: str
    next_seq: int
    def __init__(self, device_id: _Optional[str] = ..., boot_id: _Optional[str] = ..., seq: _Optional[int] = ..., result: _Optional[_Union[Ack.Result, str]] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., next_seq: _Optional[int] = ...) -> None: ...
