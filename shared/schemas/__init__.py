"""What the API accepts and returns, one module per resource. Public models never carry a
secret value."""

from __future__ import annotations

from shared.schemas.apps import (
    AppCreate,
    AppPublic,
    Domain,
    EnvironmentCreate,
    EnvironmentPublic,
    StorageDir,
    StoragePublic,
)
from shared.schemas.common import (
    Name,
    Ref,
    TriggerSecret,
    strip_credentials,
)
from shared.schemas.config import (
    ConfigKey,
    ConfigPatch,
    ConfigPublic,
)
from shared.schemas.formation import (
    FormationPatch,
    FormationPublic,
    ProcessType,
)
from shared.schemas.hooks import (
    GenericHook,
    HookConfigPublic,
    HookConfigUpdate,
    HookDeliveryPublic,
    HookReceipt,
    HookRule,
    RefPattern,
)
from shared.schemas.pipelines import (
    BuildLogLinesPublic,
    BuildLogPublic,
    PipelineCreate,
    PipelinePublic,
    StagePublic,
)
from shared.schemas.releases import (
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
from shared.schemas.schedules import (
    CronExpression,
    ScheduleCreate,
    ScheduleGates,
    SchedulePublic,
    ScheduleRunPublic,
    TimezoneName,
)
from shared.schemas.subscriptions import (
    NotificationAttemptPublic,
    NotificationEvent,
    NotificationPublic,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
)
from shared.schemas.tokens import (
    Scope,
    TokenCreate,
    TokenCreated,
    TokenPublic,
)
from shared.schemas.workers import (
    WorkerPoolPublic,
)

__all__ = [
    "AppCreate",
    "AppPublic",
    "ArtifactPublic",
    "ArtifactSide",
    "BuildLogLinesPublic",
    "BuildLogPublic",
    "ConfigChange",
    "ConfigKey",
    "ConfigPatch",
    "ConfigPublic",
    "CronExpression",
    "CurrentPublic",
    "DeploymentPublic",
    "Domain",
    "EnvironmentCreate",
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
    "WorkerPoolPublic",
    "strip_credentials",
]
