from convoy.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttemptState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_STATE_UNSPECIFIED: _ClassVar[AttemptState]
    ATTEMPT_STARTING: _ClassVar[AttemptState]
    ATTEMPT_RUNNING: _ClassVar[AttemptState]
    ATTEMPT_EXITED: _ClassVar[AttemptState]
    ATTEMPT_CANCELLED: _ClassVar[AttemptState]
    ATTEMPT_TIMED_OUT: _ClassVar[AttemptState]
    ATTEMPT_ERROR: _ClassVar[AttemptState]
ATTEMPT_STATE_UNSPECIFIED: AttemptState
ATTEMPT_STARTING: AttemptState
ATTEMPT_RUNNING: AttemptState
ATTEMPT_EXITED: AttemptState
ATTEMPT_CANCELLED: AttemptState
ATTEMPT_TIMED_OUT: AttemptState
ATTEMPT_ERROR: AttemptState

class PullImageRequest(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: str
    def __init__(self, image: _Optional[str] = ...) -> None: ...

class ManifestEntry(_message.Message):
    __slots__ = ("path", "mode", "size", "hash", "target")
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    path: str
    mode: int
    size: int
    hash: str
    target: str
    def __init__(self, path: _Optional[str] = ..., mode: _Optional[int] = ..., size: _Optional[int] = ..., hash: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class MissingObjectsRequest(_message.Message):
    __slots__ = ("revision", "hashes", "entries")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    revision: str
    hashes: _containers.RepeatedScalarFieldContainer[str]
    entries: _containers.RepeatedCompositeFieldContainer[ManifestEntry]
    def __init__(self, revision: _Optional[str] = ..., hashes: _Optional[_Iterable[str]] = ..., entries: _Optional[_Iterable[_Union[ManifestEntry, _Mapping]]] = ...) -> None: ...

class MissingObjectsResponse(_message.Message):
    __slots__ = ("has_revision", "missing")
    HAS_REVISION_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    has_revision: bool
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, has_revision: _Optional[bool] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class MakeRevisionRequest(_message.Message):
    __slots__ = ("revision", "entries", "base", "removed", "planned")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    revision: str
    entries: _containers.RepeatedCompositeFieldContainer[ManifestEntry]
    base: str
    removed: _containers.RepeatedScalarFieldContainer[str]
    planned: bool
    def __init__(self, revision: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[ManifestEntry, _Mapping]]] = ..., base: _Optional[str] = ..., removed: _Optional[_Iterable[str]] = ..., planned: _Optional[bool] = ...) -> None: ...

class MakeRevisionResponse(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class HasImageRequest(_message.Message):
    __slots__ = ("image", "image_id")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    image: str
    image_id: str
    def __init__(self, image: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class HasImageResponse(_message.Message):
    __slots__ = ("present", "image_id")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    present: bool
    image_id: str
    def __init__(self, present: _Optional[bool] = ..., image_id: _Optional[str] = ...) -> None: ...

class ImageChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class LoadImageResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, images: _Optional[_Iterable[str]] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("name", "agent_version", "capacity", "docker_version", "build", "accepting", "why", "networks", "run_as")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    DOCKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUILD_FIELD_NUMBER: _ClassVar[int]
    ACCEPTING_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    RUN_AS_FIELD_NUMBER: _ClassVar[int]
    name: str
    agent_version: str
    capacity: _common_pb2.Resources
    docker_version: str
    build: str
    accepting: bool
    why: str
    networks: _containers.RepeatedScalarFieldContainer[str]
    run_as: str
    def __init__(self, name: _Optional[str] = ..., agent_version: _Optional[str] = ..., capacity: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., docker_version: _Optional[str] = ..., build: _Optional[str] = ..., accepting: _Optional[bool] = ..., why: _Optional[str] = ..., networks: _Optional[_Iterable[str]] = ..., run_as: _Optional[str] = ...) -> None: ...

class StartAttemptRequest(_message.Message):
    __slots__ = ("attempt_id", "run_id", "submission_id", "experiment", "image", "argv", "env", "resources", "network", "timeout_seconds", "source_path", "outputs", "revision", "inputs", "build_key", "owner", "progress")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    BUILD_KEY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    run_id: str
    submission_id: str
    experiment: str
    image: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    resources: _common_pb2.Resources
    network: str
    timeout_seconds: float
    source_path: str
    outputs: _containers.RepeatedScalarFieldContainer[str]
    revision: str
    inputs: _containers.ScalarMap[str, str]
    build_key: str
    owner: str
    progress: str
    def __init__(self, attempt_id: _Optional[str] = ..., run_id: _Optional[str] = ..., submission_id: _Optional[str] = ..., experiment: _Optional[str] = ..., image: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., resources: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., network: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., source_path: _Optional[str] = ..., outputs: _Optional[_Iterable[str]] = ..., revision: _Optional[str] = ..., inputs: _Optional[_Mapping[str, str]] = ..., build_key: _Optional[str] = ..., owner: _Optional[str] = ..., progress: _Optional[str] = ...) -> None: ...

class BuildRequest(_message.Message):
    __slots__ = ("key", "attempt")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    key: str
    attempt: StartAttemptRequest
    def __init__(self, key: _Optional[str] = ..., attempt: _Optional[_Union[StartAttemptRequest, _Mapping]] = ...) -> None: ...

class BuildResult(_message.Message):
    __slots__ = ("key", "succeeded", "exit_code", "reason", "tail", "attempt_id", "built_now", "seconds")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    BUILT_NOW_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    key: str
    succeeded: bool
    exit_code: int
    reason: str
    tail: str
    attempt_id: str
    built_now: bool
    seconds: float
    def __init__(self, key: _Optional[str] = ..., succeeded: _Optional[bool] = ..., exit_code: _Optional[int] = ..., reason: _Optional[str] = ..., tail: _Optional[str] = ..., attempt_id: _Optional[str] = ..., built_now: _Optional[bool] = ..., seconds: _Optional[float] = ...) -> None: ...

class AttemptStatus(_message.Message):
    __slots__ = ("attempt_id", "state", "exit_code", "started_at", "ended_at", "reason", "image_id", "container_id", "run_id", "lacks_revision", "code", "owner", "resources", "progress", "has_progress")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LACKS_REVISION_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    HAS_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    state: AttemptState
    exit_code: int
    started_at: float
    ended_at: float
    reason: str
    image_id: str
    container_id: str
    run_id: str
    lacks_revision: bool
    code: str
    owner: str
    resources: _common_pb2.Resources
    progress: float
    has_progress: bool
    def __init__(self, attempt_id: _Optional[str] = ..., state: _Optional[_Union[AttemptState, str]] = ..., exit_code: _Optional[int] = ..., started_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., reason: _Optional[str] = ..., image_id: _Optional[str] = ..., container_id: _Optional[str] = ..., run_id: _Optional[str] = ..., lacks_revision: _Optional[bool] = ..., code: _Optional[str] = ..., owner: _Optional[str] = ..., resources: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., progress: _Optional[float] = ..., has_progress: _Optional[bool] = ...) -> None: ...

class WatchAttemptsRequest(_message.Message):
    __slots__ = ("owner", "heartbeat_seconds")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    owner: str
    heartbeat_seconds: float
    def __init__(self, owner: _Optional[str] = ..., heartbeat_seconds: _Optional[float] = ...) -> None: ...

class AgentEvent(_message.Message):
    __slots__ = ("snapshot", "changed", "heartbeat")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    snapshot: AttemptSnapshot
    changed: AttemptStatus
    heartbeat: Heartbeat
    def __init__(self, snapshot: _Optional[_Union[AttemptSnapshot, _Mapping]] = ..., changed: _Optional[_Union[AttemptStatus, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class AttemptSnapshot(_message.Message):
    __slots__ = ("attempts", "accepting", "why")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTING_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[AttemptStatus]
    accepting: bool
    why: str
    def __init__(self, attempts: _Optional[_Iterable[_Union[AttemptStatus, _Mapping]]] = ..., accepting: _Optional[bool] = ..., why: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("accepting", "why")
    ACCEPTING_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    accepting: bool
    why: str
    def __init__(self, accepting: _Optional[bool] = ..., why: _Optional[str] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("attempt_id", "whole")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    WHOLE_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    whole: bool
    def __init__(self, attempt_id: _Optional[str] = ..., whole: _Optional[bool] = ...) -> None: ...

class AttemptRef(_message.Message):
    __slots__ = ("attempt_id",)
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    def __init__(self, attempt_id: _Optional[str] = ...) -> None: ...

class ListAttemptsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAttemptsResponse(_message.Message):
    __slots__ = ("attempts",)
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[AttemptStatus]
    def __init__(self, attempts: _Optional[_Iterable[_Union[AttemptStatus, _Mapping]]] = ...) -> None: ...

class CancelAttemptRequest(_message.Message):
    __slots__ = ("attempt_id", "grace_seconds")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    grace_seconds: float
    def __init__(self, attempt_id: _Optional[str] = ..., grace_seconds: _Optional[float] = ...) -> None: ...

class ReadLogRequest(_message.Message):
    __slots__ = ("attempt_id", "offset", "follow")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    offset: int
    follow: bool
    def __init__(self, attempt_id: _Optional[str] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class FetchResultsRequest(_message.Message):
    __slots__ = ("attempt_id", "max_bytes")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    max_bytes: int
    def __init__(self, attempt_id: _Optional[str] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class ResultsSizeResponse(_message.Message):
    __slots__ = ("disk_bytes", "files", "log_bytes", "log_length")
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    LOG_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOG_LENGTH_FIELD_NUMBER: _ClassVar[int]
    disk_bytes: int
    files: int
    log_bytes: int
    log_length: int
    def __init__(self, disk_bytes: _Optional[int] = ..., files: _Optional[int] = ..., log_bytes: _Optional[int] = ..., log_length: _Optional[int] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("path", "mode", "data", "last", "sha256", "left_out")
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    path: str
    mode: int
    data: bytes
    last: bool
    sha256: str
    left_out: str
    def __init__(self, path: _Optional[str] = ..., mode: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., sha256: _Optional[str] = ..., left_out: _Optional[str] = ...) -> None: ...
