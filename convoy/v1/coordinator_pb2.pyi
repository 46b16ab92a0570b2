from convoy.v1 import agent_pb2 as _agent_pb2
from convoy.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HasObjectsRequest(_message.Message):
    __slots__ = ("revision", "hashes")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    revision: str
    hashes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, revision: _Optional[str] = ..., hashes: _Optional[_Iterable[str]] = ...) -> None: ...

class HasObjectsResponse(_message.Message):
    __slots__ = ("has_revision", "missing")
    HAS_REVISION_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    has_revision: bool
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, has_revision: _Optional[bool] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class ObjectChunk(_message.Message):
    __slots__ = ("hash", "data", "last")
    HASH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    hash: str
    data: bytes
    last: bool
    def __init__(self, hash: _Optional[str] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class PutObjectsResponse(_message.Message):
    __slots__ = ("stored", "bytes")
    STORED_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    stored: int
    bytes: int
    def __init__(self, stored: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class PutRevisionRequest(_message.Message):
    __slots__ = ("revision", "entries")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    revision: str
    entries: _containers.RepeatedCompositeFieldContainer[_agent_pb2.ManifestEntry]
    def __init__(self, revision: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[_agent_pb2.ManifestEntry, _Mapping]]] = ...) -> None: ...

class PutRevisionResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: str
    def __init__(self, revision: _Optional[str] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("submission_id",)
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    def __init__(self, submission_id: _Optional[str] = ...) -> None: ...

class FetchChunk(_message.Message):
    __slots__ = ("path", "mode", "data", "last", "experiment")
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    path: str
    mode: int
    data: bytes
    last: bool
    experiment: str
    def __init__(self, path: _Optional[str] = ..., mode: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., experiment: _Optional[str] = ...) -> None: ...

class ResultsRequest(_message.Message):
    __slots__ = ("experiment", "latest", "where")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    latest: bool
    where: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, experiment: _Optional[str] = ..., latest: _Optional[bool] = ..., where: _Optional[_Iterable[str]] = ...) -> None: ...

class ResultRow(_message.Message):
    __slots__ = ("run", "metrics_json", "metrics_missing")
    class MetricsMissingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUN_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    METRICS_MISSING_FIELD_NUMBER: _ClassVar[int]
    run: Run
    metrics_json: str
    metrics_missing: _containers.ScalarMap[str, str]
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., metrics_json: _Optional[str] = ..., metrics_missing: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ResultsChunk(_message.Message):
    __slots__ = ("params", "metrics", "rows")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    params: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[ResultRow]
    def __init__(self, params: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[ResultRow, _Mapping]]] = ...) -> None: ...

class StopAgentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StopAgentsResponse(_message.Message):
    __slots__ = ("hosts",)
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedCompositeFieldContainer[AgentStopped]
    def __init__(self, hosts: _Optional[_Iterable[_Union[AgentStopped, _Mapping]]] = ...) -> None: ...

class AgentStopped(_message.Message):
    __slots__ = ("host", "stopped", "said")
    HOST_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    SAID_FIELD_NUMBER: _ClassVar[int]
    host: str
    stopped: bool
    said: str
    def __init__(self, host: _Optional[str] = ..., stopped: _Optional[bool] = ..., said: _Optional[str] = ...) -> None: ...

class WhyRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class WhyResponse(_message.Message):
    __slots__ = ("run_id", "key", "key_parts", "reused_from", "compared", "changed", "changed_files", "forced", "text")
    class KeyPartsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_PARTS_FIELD_NUMBER: _ClassVar[int]
    REUSED_FROM_FIELD_NUMBER: _ClassVar[int]
    COMPARED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FILES_FIELD_NUMBER: _ClassVar[int]
    FORCED_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    key: str
    key_parts: _containers.ScalarMap[str, str]
    reused_from: str
    compared: str
    changed: _containers.RepeatedScalarFieldContainer[str]
    changed_files: _containers.RepeatedScalarFieldContainer[str]
    forced: bool
    text: str
    def __init__(self, run_id: _Optional[str] = ..., key: _Optional[str] = ..., key_parts: _Optional[_Mapping[str, str]] = ..., reused_from: _Optional[str] = ..., compared: _Optional[str] = ..., changed: _Optional[_Iterable[str]] = ..., changed_files: _Optional[_Iterable[str]] = ..., forced: _Optional[bool] = ..., text: _Optional[str] = ...) -> None: ...

class Submission(_message.Message):
    __slots__ = ("id", "experiment", "total", "created_at", "results_dir", "revision", "spec_path", "progress_pattern", "priority")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_DIR_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SPEC_PATH_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PATTERN_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    experiment: str
    total: int
    created_at: float
    results_dir: str
    revision: str
    spec_path: str
    progress_pattern: str
    priority: int
    def __init__(self, id: _Optional[str] = ..., experiment: _Optional[str] = ..., total: _Optional[int] = ..., created_at: _Optional[float] = ..., results_dir: _Optional[str] = ..., revision: _Optional[str] = ..., spec_path: _Optional[str] = ..., progress_pattern: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class ListSubmissionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSubmissionsResponse(_message.Message):
    __slots__ = ("submissions",)
    SUBMISSIONS_FIELD_NUMBER: _ClassVar[int]
    submissions: _containers.RepeatedCompositeFieldContainer[Submission]
    def __init__(self, submissions: _Optional[_Iterable[_Union[Submission, _Mapping]]] = ...) -> None: ...

class RerunRequest(_message.Message):
    __slots__ = ("submission_id", "states")
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    states: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, submission_id: _Optional[str] = ..., states: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("spec_path", "spec_yaml", "results_dir", "priority", "indexes", "same_as", "unless_revision", "force", "upload")
    SPEC_PATH_FIELD_NUMBER: _ClassVar[int]
    SPEC_YAML_FIELD_NUMBER: _ClassVar[int]
    RESULTS_DIR_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    SAME_AS_FIELD_NUMBER: _ClassVar[int]
    UNLESS_REVISION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    spec_path: str
    spec_yaml: str
    results_dir: str
    priority: int
    indexes: _containers.RepeatedScalarFieldContainer[int]
    same_as: str
    unless_revision: str
    force: bool
    upload: Upload
    def __init__(self, spec_path: _Optional[str] = ..., spec_yaml: _Optional[str] = ..., results_dir: _Optional[str] = ..., priority: _Optional[int] = ..., indexes: _Optional[_Iterable[int]] = ..., same_as: _Optional[str] = ..., unless_revision: _Optional[str] = ..., force: _Optional[bool] = ..., upload: _Optional[_Union[Upload, _Mapping]] = ...) -> None: ...

class Upload(_message.Message):
    __slots__ = ("revision", "inputs", "experiment_file", "origin")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REVISION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FILE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    revision: str
    inputs: _containers.ScalarMap[str, str]
    experiment_file: str
    origin: str
    def __init__(self, revision: _Optional[str] = ..., inputs: _Optional[_Mapping[str, str]] = ..., experiment_file: _Optional[str] = ..., origin: _Optional[str] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("submission_id", "runs", "revision", "unchanged", "changed", "warnings")
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    revision: str
    unchanged: bool
    changed: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, submission_id: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., revision: _Optional[str] = ..., unchanged: _Optional[bool] = ..., changed: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "submission_id", "experiment", "index", "params_json", "state", "attempt", "host", "has_exit_code", "exit_code", "created_at", "started_at", "ended_at", "reason", "image", "results_path", "revision", "resources", "command", "image_id", "code", "retries", "infra_retries", "app_failures", "infra_failures", "key", "reused_from", "progress", "has_progress", "waiting_for")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_PATH_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    INFRA_RETRIES_FIELD_NUMBER: _ClassVar[int]
    APP_FAILURES_FIELD_NUMBER: _ClassVar[int]
    INFRA_FAILURES_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    REUSED_FROM_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    HAS_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    submission_id: str
    experiment: str
    index: int
    params_json: str
    state: str
    attempt: int
    host: str
    has_exit_code: bool
    exit_code: int
    created_at: float
    started_at: float
    ended_at: float
    reason: str
    image: str
    results_path: str
    revision: str
    resources: _common_pb2.Resources
    command: str
    image_id: str
    code: str
    retries: int
    infra_retries: int
    app_failures: int
    infra_failures: int
    key: str
    reused_from: str
    progress: float
    has_progress: bool
    waiting_for: str
    def __init__(self, id: _Optional[str] = ..., submission_id: _Optional[str] = ..., experiment: _Optional[str] = ..., index: _Optional[int] = ..., params_json: _Optional[str] = ..., state: _Optional[str] = ..., attempt: _Optional[int] = ..., host: _Optional[str] = ..., has_exit_code: _Optional[bool] = ..., exit_code: _Optional[int] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., reason: _Optional[str] = ..., image: _Optional[str] = ..., results_path: _Optional[str] = ..., revision: _Optional[str] = ..., resources: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., command: _Optional[str] = ..., image_id: _Optional[str] = ..., code: _Optional[str] = ..., retries: _Optional[int] = ..., infra_retries: _Optional[int] = ..., app_failures: _Optional[int] = ..., infra_failures: _Optional[int] = ..., key: _Optional[str] = ..., reused_from: _Optional[str] = ..., progress: _Optional[float] = ..., has_progress: _Optional[bool] = ..., waiting_for: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("submission_id", "states", "limit", "experiment", "newest")
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    states: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    experiment: str
    newest: bool
    def __init__(self, submission_id: _Optional[str] = ..., states: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ..., experiment: _Optional[str] = ..., newest: _Optional[bool] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ("submission_id", "snapshot")
    SUBMISSION_ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    submission_id: str
    snapshot: bool
    def __init__(self, submission_id: _Optional[str] = ..., snapshot: _Optional[bool] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run", "previous_state", "snapshot", "at")
    RUN_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    run: Run
    previous_state: str
    snapshot: bool
    at: float
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., previous_state: _Optional[str] = ..., snapshot: _Optional[bool] = ..., at: _Optional[float] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("run_id", "offset", "follow", "attempt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    offset: int
    follow: bool
    attempt: int
    def __init__(self, run_id: _Optional[str] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ..., attempt: _Optional[int] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("id", "grace_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    grace_seconds: float
    def __init__(self, id: _Optional[str] = ..., grace_seconds: _Optional[float] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cancelled: _Optional[_Iterable[str]] = ...) -> None: ...

class HostsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Host(_message.Message):
    __slots__ = ("name", "state", "capacity", "allocated", "runs", "agent_version", "address", "reason", "labels", "accepting", "since")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTING_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    capacity: _common_pb2.Resources
    allocated: _common_pb2.Resources
    runs: _containers.RepeatedScalarFieldContainer[str]
    agent_version: str
    address: str
    reason: str
    labels: _containers.ScalarMap[str, str]
    accepting: bool
    since: float
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., capacity: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., allocated: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., runs: _Optional[_Iterable[str]] = ..., agent_version: _Optional[str] = ..., address: _Optional[str] = ..., reason: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., accepting: _Optional[bool] = ..., since: _Optional[float] = ...) -> None: ...

class HostsResponse(_message.Message):
    __slots__ = ("hosts", "hosts_file")
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FILE_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    hosts_file: str
    def __init__(self, hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ..., hosts_file: _Optional[str] = ...) -> None: ...

class AddHostRequest(_message.Message):
    __slots__ = ("name", "address", "port", "user", "identity", "cpus", "memory_bytes", "python", "agent_home", "docker_host", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PYTHON_FIELD_NUMBER: _ClassVar[int]
    AGENT_HOME_FIELD_NUMBER: _ClassVar[int]
    DOCKER_HOST_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    port: int
    user: str
    identity: str
    cpus: float
    memory_bytes: int
    python: str
    agent_home: str
    docker_host: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., port: _Optional[int] = ..., user: _Optional[str] = ..., identity: _Optional[str] = ..., cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., python: _Optional[str] = ..., agent_home: _Optional[str] = ..., docker_host: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AddHostResponse(_message.Message):
    __slots__ = ("hosts_file", "host")
    HOSTS_FILE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    hosts_file: str
    host: Host
    def __init__(self, hosts_file: _Optional[str] = ..., host: _Optional[_Union[Host, _Mapping]] = ...) -> None: ...

class RemoveHostRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RemoveHostResponse(_message.Message):
    __slots__ = ("hosts_file", "in_file", "in_use", "requeued")
    HOSTS_FILE_FIELD_NUMBER: _ClassVar[int]
    IN_FILE_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    REQUEUED_FIELD_NUMBER: _ClassVar[int]
    hosts_file: str
    in_file: bool
    in_use: bool
    requeued: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hosts_file: _Optional[str] = ..., in_file: _Optional[bool] = ..., in_use: _Optional[bool] = ..., requeued: _Optional[_Iterable[str]] = ...) -> None: ...

class TrustHostRequest(_message.Message):
    __slots__ = ("name", "fingerprint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    fingerprint: str
    def __init__(self, name: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class KnownKey(_message.Message):
    __slots__ = ("fingerprint", "file")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    file: str
    def __init__(self, fingerprint: _Optional[str] = ..., file: _Optional[str] = ...) -> None: ...

class TrustHostResponse(_message.Message):
    __slots__ = ("key_type", "fingerprint", "recorded", "known_hosts", "others")
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    KNOWN_HOSTS_FIELD_NUMBER: _ClassVar[int]
    OTHERS_FIELD_NUMBER: _ClassVar[int]
    key_type: str
    fingerprint: str
    recorded: bool
    known_hosts: str
    others: _containers.RepeatedCompositeFieldContainer[KnownKey]
    def __init__(self, key_type: _Optional[str] = ..., fingerprint: _Optional[str] = ..., recorded: _Optional[bool] = ..., known_hosts: _Optional[str] = ..., others: _Optional[_Iterable[_Union[KnownKey, _Mapping]]] = ...) -> None: ...
