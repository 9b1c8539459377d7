"""A canary on an environment spread over several run hosts, one host's part at a time: the
coordinator's weights (its own router set, the other hosts told to weigh), and a host weighing
or stopping its share as the deployment's rollout record says at that moment."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
from celery import Celery
from sqlmodel import Session

from shipyard.router.runtime import RouterError
from shipyard.shared import migrate
from shipyard.shared.db import get_engine, session_scope
from shipyard.shared.host_inbox import Inbox, ShareMessage
from shipyard.shared.models import App, Deployment, Environment, ShareStatus, utcnow
from shipyard.shared.process_record import ProcessRecord, ProcessStatus
from shipyard.shared.schemas import AppCreate, EnvironmentCreate
from shipyard.shared.schemas.rollouts import (
    RolloutPlan,
    RolloutRecord,
    RolloutState,
    RolloutStep,
)
from shipyard.shared.services import apps, deployments, shares
from shipyard.shared.settings import Settings
from shipyard.workers.context import WorkerContext
from shipyard.workers.stages import rollouts, spread
from tests.shared.factories import make_artifact, make_release


def web(name: str, host: str) -> ProcessRecord:
    return {
        "type": "web",
        "status": ProcessStatus.RUNNING,
        "port": 8000,
        "server": name,
        "host": host,
    }


OLD_HERE, OLD_THERE = web("old-a", "alpha"), web("old-b", "beta")
NEW_HERE, NEW_THERE = web("new-a", "alpha"), web("new-b", "beta")


class Router:
    """A host's router as the canary sees it: every call kept."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], list[str], int | None]] = []

    def split(self, new: list[ProcessRecord], old: list[ProcessRecord], share: int) -> object:
        self.calls.append(("split", _names(new), _names(old), share))
        return (1, 1)

    def unsplit(self, new: list[ProcessRecord], old: list[ProcessRecord]) -> bool:
        self.calls.append(("unsplit", _names(new), _names(old), None))
        return True

    def retire(self, processes: list[ProcessRecord]) -> None:
        self.calls.append(("retire", _names(processes), [], None))


class Stopper:
    """A runner as stopping a share uses it: what it stopped."""

    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop(self, processes: list[ProcessRecord]) -> None:
        self.stopped += _names(processes)


def _names(processes: list[ProcessRecord]) -> list[str]:
    return [str(p["server"]) for p in processes]


def test_the_coordinator_sets_its_own_router_and_tells_the_other_hosts_to_weigh() -> None:
    inbox = Inbox(fakeredis.FakeRedis(), "test")
    router = Router()
    deployment_id = uuid.uuid4()
    weights = spread.SpreadWeights(
        router,  # type: ignore[arg-type]
        inbox,
        deployment_id,
        attempt=2,
        me="alpha",
        others=["beta", "gamma"],
    )

    weights.split([NEW_HERE, NEW_THERE], [OLD_HERE, OLD_THERE], 20)
    weights.retire([NEW_HERE, NEW_THERE])

    assert router.calls == [
        ("split", ["new-a"], ["old-a"], 20),
        ("retire", ["new-a"], [], None),
    ]
    told = ShareMessage(action="weigh", deployment_id=deployment_id, attempt=2)
    for host in ("beta", "gamma"):
        assert inbox.receive(host, timeout=0.1) == told
        assert inbox.receive(host, timeout=0.1) is None  # retire tells nobody: a stop does
    assert inbox.receive("alpha", timeout=0.1) is None


@pytest.fixture
def context(tmp_path: Path) -> Iterator[WorkerContext]:
    """Run host beta's worker context, on a migrated SQLite file of this test's own (and a
    fake broker: the shares' change notices go there)."""
    settings = Settings(data_dir=tmp_path / "data", host_name="beta")
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.sqlalchemy_url)
    made = WorkerContext.create(settings, Celery("shipyard-tests"))
    yield dataclasses.replace(made, redis=fakeredis.FakeRedis())
    get_engine(settings.sqlalchemy_url).dispose()


@pytest.fixture
def canary(context: WorkerContext, tmp_path: Path) -> uuid.UUID:
    """A deployment in its canary on alpha and beta (beta's share ready), the release it would
    replace live on both."""
    with session_scope(context.db_url) as session:
        app = apps.create_app(
            session=session, data=AppCreate(name="web", repo=str(tmp_path), builder="noop")
        )
        environment = apps.create_environment(
            session=session, app=app, data=EnvironmentCreate(name="staging", runner="noop")
        )
        live = _begin(session, app, environment, "one")
        deployments.go_live(session=session, deployment=live, processes=[OLD_HERE, OLD_THERE])
        deployment = _begin(session, app, environment, "two")
        shares.ask(session=session, deployment_id=deployment.id, hosts=["alpha", "beta"], attempt=1)
        shares.advance(
            session=session,
            deployment_id=deployment.id,
            host="beta",
            attempt=1,
            status=ShareStatus.READY,
            processes=[NEW_THERE],
        )
        session.commit()
        deployment_id = deployment.id
    _record(context, deployment_id, "canary", 30)
    return deployment_id


def _begin(session: Session, app: App, environment: Environment, label: str) -> Deployment:
    release = make_release(session, app, environment, make_artifact(session, app, label))
    assert release.pipeline_id is not None
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
    )
    assert deployment is not None
    return deployment


def _record(
    context: WorkerContext, deployment_id: uuid.UUID, state: RolloutState, share: int
) -> None:
    record = RolloutRecord(
        plan=RolloutPlan(canary=[30, 100]),
        state=state,
        share=share,
        steps=[RolloutStep(phase="canary", share=30, started_at=utcnow())],
    )
    rollouts.DeploymentRollout(context.db_url, deployment_id).save(record)


def _weigh(context: WorkerContext, deployment_id: uuid.UUID, router: Router) -> None:
    message = ShareMessage(action="weigh", deployment_id=deployment_id, attempt=1)
    spread.weigh_share(context, message, router)  # type: ignore[arg-type]


def test_a_host_weighs_its_share_as_the_record_says_when_it_reads_it(
    context: WorkerContext, canary: uuid.UUID
) -> None:
    router = Router()

    _weigh(context, canary, router)  # its own processes only, at the recorded share
    _record(context, canary, "aborted", 0)
    _weigh(context, canary, router)  # a late message once aborted: back to the live release
    _record(context, canary, "done", 100)
    _weigh(context, canary, router)  # gone on: the switch serves it, nothing to weigh

    assert router.calls == [
        ("split", ["new-b"], ["old-b"], 30),
        ("unsplit", ["new-b"], ["old-b"], None),
    ]


def test_a_host_whose_share_is_not_ready_weighs_nothing(
    context: WorkerContext, canary: uuid.UUID
) -> None:
    with session_scope(context.db_url) as session:
        shares.advance(
            session=session,
            deployment_id=canary,
            host="beta",
            attempt=1,
            status=ShareStatus.STOPPED,
        )
        session.commit()
    router = Router()

    _weigh(context, canary, router)
    stale = ShareMessage(action="weigh", deployment_id=canary, attempt=7)
    spread.weigh_share(context, stale, router)  # type: ignore[arg-type]

    assert router.calls == []


def test_a_stopped_share_whose_canary_took_a_step_leaves_the_router_first(
    context: WorkerContext, canary: uuid.UUID
) -> None:
    router, runner = Router(), Stopper()

    spread.stop_share(context, runner, canary, "beta", 1, router)  # type: ignore[arg-type]

    assert router.calls == [("unsplit", ["new-b"], ["old-b"], None)]
    assert runner.stopped == ["new-b"]
    with session_scope(context.db_url) as session:
        share = shares.get(session=session, deployment_id=canary, host="beta", attempt=1)
        assert share is not None and share.status == ShareStatus.STOPPED


def test_a_share_stopped_on_a_host_without_a_router_is_stopped_all_the_same(
    context: WorkerContext, canary: uuid.UUID
) -> None:
    runner = Stopper()

    spread.stop_share(context, runner, canary, "beta", 1, None)  # type: ignore[arg-type]

    assert runner.stopped == ["new-b"]


class Draining(Router):
    """A router whose drain works, or fails as a router that went away does."""

    def __init__(self, works: bool) -> None:
        super().__init__()
        self.works = works

    def retire(self, processes: list[ProcessRecord]) -> None:
        if not self.works:
            raise RouterError("the router's socket is gone")
        super().retire(processes)


@pytest.mark.parametrize(
    ("keep", "drains", "stopped"),
    [
        (True, True, []),  # standing by: drained out, running on
        (True, False, ["old-b"]),  # the router may still send to it: stopped after all
        (False, True, ["old-b"]),
    ],
)
def test_a_replaced_share_stands_by_only_once_drained_out_of_the_router(
    keep: bool, drains: bool, stopped: list[str]
) -> None:
    router, runner = Draining(works=drains), Stopper()

    spread._retire(router, runner, [OLD_THERE], keep=keep)  # type: ignore[arg-type]

    assert runner.stopped == stopped
    assert router.calls == ([("retire", ["old-b"], [], None)] if drains else [])
