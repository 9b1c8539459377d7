"""Apps and their environments."""

from __future__ import annotations

from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.db import flush_or_conflict
from shipyard.shared.exceptions import Conflict, InvalidInput, NotFound
from shipyard.shared.models import App, ConfigVersion, Environment
from shipyard.shared.schemas import AppCreate, AppUpdate, EnvironmentCreate, EnvironmentUpdate
from shipyard.shared.services import certificates, destroy, rollouts

# Concurrent creates that race for the same router slot: each retry takes the next free one.
_SLOT_ATTEMPTS = 20
# The advisory lock that makes environment creates take turns for a slot (any fixed number).
_SLOT_LOCK_KEY = 0x5348_5950_5244  # "SHIPRD"


def create_app(*, session: Session, data: AppCreate) -> App:
    """Register an app; its name is unique."""
    if session.exec(select(App).where(App.name == data.name)).first() is not None:
        raise Conflict(f"app {data.name!r} already exists")
    app = App(**data.model_dump())
    session.add(app)
    flush_or_conflict(session, f"app {data.name!r} already exists")
    return app


def update_app(*, session: Session, app: App, data: AppUpdate) -> App:
    """Change where the app's code is and how it is built: its next build reads the new
    repository, folder or builder (a commit already built from the same folder with the same
    builder is still a cache hit; a new folder or builder builds it anew). What runs is left
    as it is until then."""
    changes = data.model_dump(exclude_none=True)
    if not changes:
        raise InvalidInput("nothing to change: give repo, path or builder")
    for name, value in changes.items():
        setattr(app, name, value)
    session.add(app)
    session.flush()
    return app


def get_app(*, session: Session, name: str) -> App:
    """The app called `name`, or NotFound."""
    app = session.exec(select(App).where(App.name == name, col(App.destroyed_at).is_(None))).first()
    if app is None:
        raise NotFound(f"app {name!r} not found")
    return app


def list_apps(*, session: Session) -> list[App]:
    """Every app (not destroyed), by name."""
    query = select(App).where(col(App.destroyed_at).is_(None)).order_by(col(App.name))
    return list(session.exec(query))


def create_environment(
    *,
    session: Session,
    app: App,
    data: EnvironmentCreate,
    slots: int = constants.ROUTER_SLOTS,
    placed: list[str] | None = None,
) -> Environment:
    """Add an environment to `app`, with an empty config as its version 1 and a router slot;
    `placed`: the run hosts it runs on (shared.services.hosts.choose), none: where it first runs."""
    if _environment_named(session, app, data.name) is not None:
        raise Conflict(f"environment {data.name!r} of app {app.name!r} already exists")
    _check_domains(session, data.domains)
    taken_by_name = f"environment {data.name!r} of app {app.name!r} already exists"
    for _ in range(_SLOT_ATTEMPTS):
        # The noop runner serves nothing over HTTP: its environments take no router slot.
        slot = None if data.runner == "noop" else free_route_slot(session=session, slots=slots)
        environment = Environment(
            app_id=app.id,
            route_slot=slot,
            **data.model_dump(exclude={"run_host", "hosts", "spread"}),
            run_host=placed[0] if placed else None,
            extra_hosts=placed[1:] if placed else [],
        )
        try:
            with session.begin_nested():  # a savepoint: a refused insert leaves the rest intact
                session.add(environment)
        except IntegrityError as exc:
            if _environment_named(session, app, data.name) is not None:
                raise Conflict(taken_by_name) from exc
            continue  # a concurrent create took this slot: the next free one
        break
    else:
        raise Conflict("environments are being created too fast to find a router slot; retry")
    session.add(ConfigVersion(environment_id=environment.id, version=1))
    session.flush()
    certificates.sync_domains(session=session, environment=environment)
    return environment


def update_environment(
    *, session: Session, environment: Environment, data: EnvironmentUpdate
) -> list[str]:
    """Change an environment's domains (the whole list), their HTTPS settings, its default
    rollout plan (null: at once) and its standby window; returns the domains added, each due an
    ACME order now (a domain removed loses its certificate)."""
    # `rollout: null` is a change (back to at once); every other null is as if left out.
    if not data.model_dump(exclude_none=True) and "rollout" not in data.model_fields_set:
        raise InvalidInput(
            "nothing to change: give domains, https_redirect, hsts, rollout or standby_seconds"
        )
    if "rollout" in data.model_fields_set:
        rollouts.set_default(environment=environment, plan=data.rollout)
    if data.domains is not None:
        domains = list(dict.fromkeys(data.domains))
        _check_domains(session, [d for d in domains if d not in environment.domains])
        environment.domains = domains
    if data.https_redirect is not None:
        environment.https_redirect = data.https_redirect
    if data.hsts is not None:
        environment.hsts = data.hsts
    if data.standby_seconds is not None:
        environment.standby_seconds = data.standby_seconds
    session.add(environment)
    session.flush()
    return certificates.sync_domains(session=session, environment=environment)


def _check_domains(session: Session, domains: list[str]) -> None:
    """A custom domain names one environment, and never a `*.localhost` name (those are made
    from the environment's and app's names)."""
    if any(domain == "localhost" or domain.endswith(".localhost") for domain in domains):
        raise InvalidInput("domains under .localhost are given to environments by their names")
    taken = {d for listed in session.exec(select(Environment.domains)).all() for d in listed}
    clash = sorted(set(domains) & taken)
    if clash:
        raise Conflict(f"{', '.join(clash)} already belongs to another environment")


def _environment_named(session: Session, app: App, name: str) -> Environment | None:
    query = select(Environment).where(Environment.app_id == app.id, Environment.name == name)
    return session.exec(query).first()


def free_route_slot(*, session: Session, slots: int) -> int:
    """The lowest router slot no environment has. On PostgreSQL, creates take turns (an
    advisory lock held to the end of the transaction), so racing ones never pick the same slot;
    SQLite's transactions take turns already. The unique index stays the last word."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SLOT_LOCK_KEY})
    destroy.reclaim_route_slots(session=session)
    taken = set(
        session.exec(
            select(Environment.route_slot).where(col(Environment.route_slot).is_not(None))
        ).all()
    )
    for slot in range(slots):
        if slot not in taken:
            return slot
    raise Conflict(
        f"all {slots} router slots are taken: raise SHIPYARD_ROUTER_SLOTS on every run host "
        "and restart the routers"
    )


def get_environment(*, session: Session, app: App, name: str) -> Environment:
    """The environment `name` of `app`, or NotFound."""
    environment = session.exec(
        select(Environment).where(Environment.app_id == app.id, Environment.name == name)
    ).first()
    if environment is None:
        raise NotFound(f"environment {name!r} of app {app.name!r} not found")
    return environment


# Built once: most routes name an app and one of its environments.
_APP_AND_ENVIRONMENT = (
    select(App, Environment)
    .join(Environment, col(Environment.app_id) == col(App.id))
    .where(
        col(App.name) == bindparam("p_app"),
        col(App.destroyed_at).is_(None),
        col(Environment.name) == bindparam("p_environment"),
    )
)


def app_and_environment(*, session: Session, app: str, name: str) -> tuple[App, Environment]:
    """The app called `app` and its environment `name`, in one statement (where looking up one,
    then the other, took two: docs/benchmarks.md, issue 28), or NotFound for either."""
    found = session.exec(_APP_AND_ENVIRONMENT, params={"p_app": app, "p_environment": name}).first()
    if found is not None:
        return found[0], found[1]
    owner = get_app(session=session, name=app)  # NotFound says which of the two is missing
    return owner, get_environment(session=session, app=owner, name=name)


def environment_by_names(*, session: Session, app: str, name: str) -> Environment:
    """Environment `name` of the app called `app`, or NotFound for either."""
    return app_and_environment(session=session, app=app, name=name)[1]


def list_environments(*, session: Session, app: App) -> list[Environment]:
    """The environments of `app`, by name."""
    query = select(Environment).where(Environment.app_id == app.id)
    return list(session.exec(query.order_by(col(Environment.name))))
