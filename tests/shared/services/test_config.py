"""Config versions: patch semantics, secrets encrypted at rest, and what the API shows."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from shipyard.shared.crypto import SecretBox
from shipyard.shared.exceptions import InvalidInput
from shipyard.shared.models import ConfigVersion, Environment
from shipyard.shared.schemas import ConfigPatch
from shipyard.shared.services.config import (
    config_public,
    current_config,
    decrypt_config,
    patch_config,
)

SECRET = "hunter2-database-password"


def _patch(
    session: Session, environment: Environment, box: SecretBox, **fields: object
) -> tuple[ConfigVersion, bool]:
    config, changed = patch_config(
        session=session, environment=environment, patch=ConfigPatch(**fields), box=box
    )
    session.commit()
    return config, changed


def test_a_new_environment_starts_with_an_empty_version_1(
    session: Session, staging: Environment
) -> None:
    config = current_config(session=session, environment=staging)

    assert (config.version, config.plain_vars, config.secret_vars) == (1, {}, {})


def test_setting_vars_makes_a_new_version_and_keeps_the_old_one(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    first, changed = _patch(session, staging, box, vars={"DEBUG": "1", "REGION": "eu"})
    second, _ = _patch(session, staging, box, vars={"DEBUG": "0"})

    assert changed
    assert (first.version, first.plain_vars) == (2, {"DEBUG": "1", "REGION": "eu"})
    assert (second.version, second.plain_vars) == (3, {"DEBUG": "0", "REGION": "eu"})
    versions = session.exec(
        select(ConfigVersion.version).where(ConfigVersion.environment_id == staging.id)
    ).all()
    assert sorted(versions) == [1, 2, 3]


def test_none_unsets_a_var(session: Session, staging: Environment, box: SecretBox) -> None:
    _patch(session, staging, box, vars={"DEBUG": "1", "REGION": "eu"})

    config, changed = _patch(session, staging, box, vars={"DEBUG": None})

    assert changed
    assert config.plain_vars == {"REGION": "eu"}


def test_none_unsets_a_secret(session: Session, staging: Environment, box: SecretBox) -> None:
    _patch(session, staging, box, vars={"TOKEN": SECRET}, secrets=["TOKEN"])

    config, changed = _patch(session, staging, box, vars={"TOKEN": None})

    assert changed
    assert config.secret_vars == {}


def test_an_unchanged_patch_makes_no_new_version(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    before, _ = _patch(
        session, staging, box, vars={"DEBUG": "1", "TOKEN": SECRET}, secrets=["TOKEN"]
    )

    for patch in (
        {"vars": {"DEBUG": "1"}},
        {"vars": {"TOKEN": SECRET}, "secrets": ["TOKEN"]},
        {"vars": {"MISSING": None}},
        {"secrets": ["TOKEN"]},
    ):
        config, changed = _patch(session, staging, box, **patch)
        assert not changed, patch
        assert config.id == before.id

    assert current_config(session=session, environment=staging).version == before.version


def test_secret_values_are_encrypted_at_rest(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    config, _ = _patch(
        session,
        staging,
        box,
        vars={"DATABASE_PASSWORD": SECRET, "DEBUG": "1"},
        secrets=["DATABASE_PASSWORD"],
    )

    rows = session.execute(text("SELECT plain_vars, secret_vars FROM config_version")).all()
    assert SECRET not in repr(rows)
    assert config.plain_vars == {"DEBUG": "1"}
    assert box.decrypt(config.secret_vars["DATABASE_PASSWORD"]) == SECRET


def test_secrets_turns_an_existing_plain_var_into_a_secret(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    _patch(session, staging, box, vars={"API_KEY": SECRET})

    config, changed = _patch(session, staging, box, secrets=["API_KEY"])

    assert changed
    assert "API_KEY" not in config.plain_vars
    assert box.decrypt(config.secret_vars["API_KEY"]) == SECRET
    assert SECRET not in repr(session.execute(text("SELECT * FROM config_version")).all()[-1])


def test_setting_a_secret_again_as_plain_makes_it_plain(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    _patch(session, staging, box, vars={"MODE": "strict"}, secrets=["MODE"])

    config, changed = _patch(session, staging, box, vars={"MODE": "relaxed"})

    assert changed
    assert (config.plain_vars, config.secret_vars) == ({"MODE": "relaxed"}, {})


def test_changing_a_secret_value_makes_a_new_version(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    first, _ = _patch(session, staging, box, vars={"TOKEN": "old-token"}, secrets=["TOKEN"])

    second, changed = _patch(session, staging, box, vars={"TOKEN": "new-token"}, secrets=["TOKEN"])

    assert changed and second.version == first.version + 1
    assert box.decrypt(second.secret_vars["TOKEN"]) == "new-token"


def test_secrets_naming_a_key_that_is_not_set_is_invalid(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    with pytest.raises(InvalidInput, match="secrets names 'NOPE', which is not set"):
        patch_config(
            session=session, environment=staging, patch=ConfigPatch(secrets=["NOPE"]), box=box
        )


def test_port_is_reserved(session: Session, staging: Environment, box: SecretBox) -> None:
    with pytest.raises(InvalidInput, match="PORT is set by Shipyard"):
        patch_config(
            session=session,
            environment=staging,
            patch=ConfigPatch(vars={"PORT": "80"}),
            box=box,
        )

    assert current_config(session=session, environment=staging).version == 1


def test_environments_have_independent_config(
    session: Session, staging: Environment, production: Environment, box: SecretBox
) -> None:
    _patch(session, staging, box, vars={"DEBUG": "1"})

    assert current_config(session=session, environment=production).plain_vars == {}


def test_the_public_view_redacts_secret_values(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    config, _ = _patch(
        session, staging, box, vars={"TOKEN": SECRET, "DEBUG": "1"}, secrets=["TOKEN"]
    )

    public = config_public(config)

    assert public.vars == {"DEBUG": "1", "TOKEN": "<redacted>"}
    assert public.secrets == ["TOKEN"]
    assert SECRET not in public.model_dump_json()


def test_decrypt_config_gives_the_run_environment_and_the_secret_values(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    config, _ = _patch(
        session, staging, box, vars={"TOKEN": SECRET, "DEBUG": "1"}, secrets=["TOKEN"]
    )

    env, secret_values = decrypt_config(config, box)

    assert env == {"DEBUG": "1", "TOKEN": SECRET}
    assert secret_values == {SECRET}


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("LD_PRELOAD", "dynamic loader"),
        ("LD_AUDIT", "dynamic loader"),
        ("DYLD_INSERT_LIBRARIES", "dynamic loader"),
        ("PYTHONWARNINGS", "interpreter"),
        ("PYTHONSTARTUP", "interpreter"),
        ("NODE_OPTIONS", "interpreter"),
        ("BASH_ENV", "shell"),
        ("GIT_CONFIG_PARAMETERS", "git"),
        ("GIT_SSH_COMMAND", "git"),
        ("BROWSER", "program"),
    ],
)
def test_names_that_change_how_a_program_starts_are_refused(
    session: Session, staging: Environment, box: SecretBox, key: str, why: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        patch_config(
            session=session, environment=staging, patch=ConfigPatch(vars={key: "x"}), box=box
        )

    assert caught.value.message.startswith(f"{key} is a reserved config name: ")
    assert why in caught.value.message
    assert current_config(session=session, environment=staging).version == 1


def test_a_reserved_name_is_refused_as_a_secret_too_but_may_be_unset(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    with pytest.raises(InvalidInput, match="LD_PRELOAD is a reserved config name"):
        _patch(session, staging, box, vars={"LD_PRELOAD": "/x.so"}, secrets=["LD_PRELOAD"])
    # A version from before the rule: unsetting the name mends it.
    old = ConfigVersion(environment_id=staging.id, version=2, plain_vars={"LD_PRELOAD": "/x.so"})
    session.add(old)
    session.commit()

    config, changed = _patch(session, staging, box, vars={"LD_PRELOAD": None})

    assert changed and config.plain_vars == {}


def test_search_paths_and_everyday_python_settings_stay_allowed(
    session: Session, staging: Environment, box: SecretBox
) -> None:
    allowed = {
        "PATH": "/app/bin:/usr/bin:/bin",
        "PYTHONPATH": "/app/src",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NODE_PATH": "/app/lib",
        "LANG": "C.UTF-8",
        "GITHUB_TOKEN": "t",  # not a GIT_ name
        "GIT_SHA": "abc123",  # an app's own: makes git run nothing
        "ENV": "production",  # only an interactive sh reads it
        "LDAP_URL": "ldap://x",  # not an LD_ name
        "ld_preload": "lower case is another variable",
    }

    config, _changed = _patch(session, staging, box, vars=allowed)

    assert config.plain_vars == allowed
