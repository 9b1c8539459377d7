"""Release diffs: what changed, never a secret value, not even one that used to be plain."""

from __future__ import annotations

from sqlmodel import Session

from shipyard.shared.crypto import SecretBox
from shipyard.shared.models import App, Environment
from shipyard.shared.schemas import ConfigPatch
from shipyard.shared.services import config, history
from tests.shared.factories import make_artifact, make_release


def test_a_key_made_secret_shows_neither_its_old_nor_its_new_value(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    artifact = make_artifact(session, app)
    config.patch_config(
        session=session,
        environment=staging,
        patch=ConfigPatch(vars={"API_KEY": "hunter2-plain", "MODE": "a"}),
        box=box,
    )
    session.commit()
    make_release(session, app, staging, artifact)
    config.patch_config(
        session=session,
        environment=staging,
        patch=ConfigPatch(vars={"API_KEY": "hunter3", "MODE": "b"}, secrets=["API_KEY"]),
        box=box,
    )
    session.commit()
    make_release(session, app, staging, artifact)

    diff = history.diff_releases(
        session=session, environment=staging, version=2, against=1, box=box
    )

    changes = {c.key: c for c in diff.config}
    assert diff.artifact_changed is False
    assert (changes["API_KEY"].secret, changes["API_KEY"].from_, changes["API_KEY"].to) == (
        True,
        "<redacted>",
        "<redacted>",
    )
    assert (changes["MODE"].from_, changes["MODE"].to) == ("a", "b")
    assert "hunter" not in diff.model_dump_json()
