"""What the API accepts and returns, one module per resource. Public models never carry a
secret value."""

from __future__ import annotations

from shipyard.shared.schemas.apps import (
    AppCreate,
    AppDestroyedPublic,
    AppPublic,
    AppUpdate,
    Domain,
    EnvironmentCreate,
    EnvironmentPublic,
    EnvironmentUpdate,
    PlacementChange,
    StorageDir,
    StoragePublic,
)
from shipyard.shared.schemas.certificates import (
    CertificatePublic,
    CertificateUpload,
)
from shipyard.shared.schemas.common import (
    Name,
    Ref,
    TriggerSecret,
    strip_credentials,
)
from shipyard.shared.schemas.config import (
    ConfigKey,
    ConfigPatch,
    ConfigPublic,
)
from shipyard.shared.schemas.formation import (
    FormationPatch,
    FormationPublic,
    ProcessType,
    RestartCreate,
)
from shipyard.shared.schemas.hooks import (
    GenericHook,
    HookConfigPublic,
    HookConfigUpdate,
    HookDeliveryPublic,
    HookReceipt,
    HookRule,
    RefPattern,
)
from shipyard.shared.schemas.one_offs import (
    OneOffCreate,
    OneOffOutputPublic,
    OneOffPublic,
)
from shipyard.shared.schemas.pipelines import (
    BuildLogLinesPublic,
    BuildLogPublic,
    PipelineCreate,
    PipelinePublic,
    StagePublic,
)
from shipyard.shared.schemas.releases import (
    ArtifactPublic,
    ArtifactSide,
    ConfigChange,
    CurrentPublic,
    DeploymentPublic,
    GarbageCollection,
    GarbageCollectionRequest,
    HistoryPublic,
    ProcessPublic,
    PromotionCreate,
    ReleaseDiff,
    ReleasePublic,
    RollbackCreate,
)
from shipyard.shared.schemas.schedules import (
    CronExpression,
    ScheduleCreate,
    ScheduleGates,
    SchedulePublic,
    ScheduleRunPublic,
    TimezoneName,
)
from shipyard.shared.schemas.subscriptions import (
    NotificationAttemptPublic,
    NotificationEvent,
    NotificationPublic,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
)
from shipyard.shared.schemas.tokens import (
    Scope,
    TokenCreate,
    TokenCreated,
    TokenPublic,
)
from shipyard.shared.schemas.workers import (
    RunHostPublic,
    WorkerPoolPublic,
)

__all__ = [
    "AppCreate",
    "AppDestroyedPublic",
    "AppUpdate",
    "AppPublic",
    "ArtifactPublic",
    "ArtifactSide",
    "BuildLogLinesPublic",
    "BuildLogPublic",
    "CertificatePublic",
    "CertificateUpload",
    "ConfigChange",
    "ConfigKey",
    "ConfigPatch",
    "ConfigPublic",
    "CronExpression",
    "CurrentPublic",
    "DeploymentPublic",
    "Domain",
    "EnvironmentCreate",
    "EnvironmentUpdate",
    "OneOffCreate",
    "OneOffOutputPublic",
    "OneOffPublic",
    "PlacementChange",
    "EnvironmentPublic",
    "FormationPatch",
    "FormationPublic",
    "GarbageCollection",
    "GarbageCollectionRequest",
    "GenericHook",
    "HistoryPublic",
    "HookConfigPublic",
    "HookConfigUpdate",
    "HookDeliveryPublic",
    "HookReceipt",
    "HookRule",
    "Name",
    "NotificationAttemptPublic",
    "NotificationEvent",
    "NotificationPublic",
    "PipelineCreate",
    "PipelinePublic",
    "ProcessPublic",
    "ProcessType",
    "PromotionCreate",
    "Ref",
    "RefPattern",
    "ReleaseDiff",
    "ReleasePublic",
    "RestartCreate",
    "RollbackCreate",
    "ScheduleCreate",
    "ScheduleGates",
    "SchedulePublic",
    "ScheduleRunPublic",
    "Scope",
    "StagePublic",
    "StorageDir",
    "StoragePublic",
    "SubscriptionCreate",
    "SubscriptionCreated",
    "SubscriptionPublic",
    "TimezoneName",
    "TokenCreate",
    "TokenCreated",
    "TokenPublic",
    "TriggerSecret",
    "RunHostPublic",
    "WorkerPoolPublic",
    "strip_credentials",
]
