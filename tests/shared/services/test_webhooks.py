"""Incoming webhooks: signatures, real GitHub push payloads, rules, redelivery, GitLab, generic.

tests/fixtures/github_push.json is GitHub's example push event (a new `master` branch of
Codertocat/Hello-World), as published in octokit/webhooks' payload examples.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, func, select

from shipyard.shared.crypto import SecretBox
from shipyard.shared.exceptions import InvalidInput, NotFound
from shipyard.shared.models import App, Environment, Pipeline, WebhookConfig, WebhookDelivery
from shipyard.shared.schemas import AppCreate, HookConfigUpdate, HookRule
from shipyard.shared.services import apps, hook_config, webhooks
from shipyard.shared.services.webhooks import DeliveryRejected

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SECRET = "a-webhook-secret-for-tests"
COMMIT = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def push_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / "github_push.json").read_text())
    payload.update(changes)
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture
def configured(
    session: Session, box: SecretBox, app: App, staging: Environment, production: Environment
) -> WebhookConfig:
    config, _ = hook_config.configure(
        session=session,
        box=box,
        app=app,
        data=HookConfigUpdate(
            github_repository="Codertocat/Hello-World",
            gitlab_project="group/hello",
            rules=[
                HookRule(branch="master", environment="staging"),
                HookRule(tag="v*", environment="production"),
            ],
            secret=SECRET,
        ),
    )
    session.commit()
    return config


def deliver_github(
    session: Session, box: SecretBox, body: bytes, delivery_id: str, event: str = "push"
) -> webhooks.Receipt:
    recipients = webhooks.authenticate_github(
        session=session, box=box, body=body, signature=webhooks.sign(SECRET, body)
    )
    delivery = webhooks.parse_github(body, delivery_id, event)
    receipt = webhooks.receive(session=session, delivery=delivery, recipients=recipients)
    session.commit()
    return receipt


def count(session: Session, model: type[Any]) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def test_githubs_published_example_verifies() -> None:
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

    assert webhooks.sign(secret, body) == expected
    assert webhooks.signature_matches(secret, body, expected)
    assert not webhooks.signature_matches(secret, b"Hello, World?", expected)
    assert not webhooks.signature_matches("another secret", body, expected)
    assert not webhooks.signature_matches(secret, body, expected.upper())
    assert not webhooks.signature_matches(secret, body, "sha256=é")  # non-ASCII: no crash


@pytest.mark.usefixtures("configured")
def test_a_real_push_starts_a_deploy_of_the_pushed_commit(session: Session, box: SecretBox) -> None:
    receipt = deliver_github(session, box, encode(push_payload()), "delivery-1")

    assert receipt.outcome == "started"
    (pipeline,) = receipt.started
    assert receipt.pipelines == [pipeline]
    assert (pipeline.kind, pipeline.trigger, pipeline.ref) == ("deploy", "webhook", COMMIT)
    environment = session.get(Environment, pipeline.environment_id)
    assert environment is not None and environment.name == "staging"
    row = session.exec(select(WebhookDelivery)).one()
    assert (row.provider, row.delivery_id, row.event, row.outcome) == (
        "github",
        "delivery-1",
        "push",
        "started",
    )
    assert (row.ref, row.commit_sha, row.environment, row.pipeline_id) == (
        "refs/heads/master",
        COMMIT,
        "staging",
        pipeline.id,
    )


@pytest.mark.usefixtures("configured")
def test_a_redelivery_answers_with_the_first_pipeline_and_creates_nothing(
    session: Session, box: SecretBox
) -> None:
    body = encode(push_payload())
    first = deliver_github(session, box, body, "same-id")

    again = deliver_github(session, box, body, "same-id")

    assert again.outcome == "duplicate"
    assert again.started == []
    assert [p.id for p in again.pipelines] == [first.started[0].id]
    assert count(session, Pipeline) == 1
    assert count(session, WebhookDelivery) == 1


@pytest.mark.usefixtures("configured")
def test_a_racing_redelivery_loses_on_the_unique_key_and_gets_the_first_pipeline(
    session: Session, box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = encode(push_payload())
    first = deliver_github(session, box, body, "raced")
    # The second request checked for the delivery before the first one committed it.
    calls: list[object] = []
    real_existing = webhooks._existing

    def existing_not_yet_committed(*args: Any) -> WebhookDelivery | None:
        calls.append(args)
        return None if len(calls) == 1 else real_existing(*args)

    monkeypatch.setattr(webhooks, "_existing", existing_not_yet_committed)

    again = deliver_github(session, box, body, "raced")

    assert len(calls) == 2  # the insert failed on the unique key, then the row was found
    assert again.outcome == "duplicate"
    assert [p.id for p in again.pipelines] == [first.started[0].id]
    assert count(session, Pipeline) == 1


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ref": "refs/heads/feature/x"}, "no rule maps branch 'feature/x' to an environment"),
        ({"ref": "refs/tags/release-1"}, "no rule maps tag 'release-1' to an environment"),
        ({"ref": "refs/pull/1/merge"}, "ref 'refs/pull/1/merge' is neither a branch nor a tag"),
        # GitHub's tag deletion example: `after` is all zeros and head_commit is null.
        (
            {
                "ref": "refs/tags/simple-tag",
                "after": "0" * 40,
                "deleted": True,
                "head_commit": None,
            },
            "refs/tags/simple-tag was deleted",
        ),
        ({"after": "not-a-sha", "head_commit": None}, "the payload names no commit"),
    ],
)
def test_pushes_no_rule_maps_are_recorded_as_ignored(
    session: Session, box: SecretBox, changes: dict[str, Any], reason: str
) -> None:
    receipt = deliver_github(session, box, encode(push_payload(**changes)), "ignored-1")

    assert (receipt.outcome, receipt.reason) == ("ignored", reason)
    assert count(session, Pipeline) == 0
    row = session.exec(select(WebhookDelivery)).one()
    assert (row.outcome, row.reason, row.pipeline_id) == ("ignored", reason, None)


@pytest.mark.usefixtures("configured")
def test_a_tag_matching_a_pattern_deploys_to_its_environment(
    session: Session, box: SecretBox
) -> None:
    receipt = deliver_github(session, box, encode(push_payload(ref="refs/tags/v1.2.0")), "tag")

    (pipeline,) = receipt.started
    environment = session.get(Environment, pipeline.environment_id)
    assert environment is not None and environment.name == "production"


@pytest.mark.usefixtures("configured")
def test_ping_and_other_events(session: Session, box: SecretBox) -> None:
    body = encode({"zen": "Keep it logically awesome.", **push_payload()})

    ping = deliver_github(session, box, body, "ping-1", event="ping")
    issues = deliver_github(session, box, body, "issues-1", event="issues")

    assert ping.outcome == "ping"
    assert issues.outcome == "ignored"
    assert issues.reason == "event 'issues' is not handled (only pushes are)"
    assert count(session, Pipeline) == 0
    assert count(session, WebhookDelivery) == 2


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize(
    ("body", "signature", "reason"),
    [
        (encode(push_payload()), None, "missing_signature"),
        (encode(push_payload()), "", "missing_signature"),
        (encode(push_payload()), webhooks.sign("wrong secret", b"x"), "bad_signature"),
        (
            encode(push_payload()) + b" ",
            webhooks.sign(SECRET, encode(push_payload())),
            "bad_signature",
        ),
        (b"not json", webhooks.sign(SECRET, b"not json"), "unknown_repository"),
        (
            encode(push_payload(repository={"full_name": "someone/else"})),
            webhooks.sign(SECRET, encode(push_payload(repository={"full_name": "someone/else"}))),
            "unknown_repository",
        ),
        (b"[" * 100_000, "sha256=00", "unknown_repository"),  # deeper than Python recurses
    ],
)
def test_deliveries_that_do_not_authenticate_are_rejected_and_store_nothing(
    session: Session, box: SecretBox, body: bytes, signature: str | None, reason: str
) -> None:
    with pytest.raises(DeliveryRejected) as rejected:
        webhooks.authenticate_github(session=session, box=box, body=body, signature=signature)

    assert rejected.value.reason == reason
    assert count(session, WebhookDelivery) == 0


def test_one_repository_several_apps_only_the_apps_whose_secret_signed_get_it(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    other = apps.create_app(session=session, data=AppCreate(name="api", repo="/srv/api"))
    for owner, secret in ((app, SECRET), (other, "the-api-apps-own-secret")):
        hook_config.configure(
            session=session,
            box=box,
            app=owner,
            data=HookConfigUpdate(github_repository="codertocat/hello-world", secret=secret),
        )
    session.commit()
    body = encode(push_payload())

    recipients = webhooks.authenticate_github(
        session=session, box=box, body=body, signature=webhooks.sign(SECRET, body)
    )

    assert [owner.name for owner in recipients] == ["web"]


def test_a_delivery_without_an_id_is_refused() -> None:
    with pytest.raises(InvalidInput):
        webhooks.parse_github(b"{}", None, "push")
    with pytest.raises(InvalidInput):
        webhooks.parse_gitlab(b"{}", "x" * 101, "Push Hook")


def test_a_generic_body_is_validated_and_its_bad_fields_named() -> None:
    body = encode({"app": "web", "environment": "production", "ref": "v2"})

    delivery = webhooks.parse_generic_body(body, "ci-1")

    assert (delivery.provider, delivery.delivery_id, delivery.event) == (
        "generic",
        "ci-1",
        "deploy",
    )
    assert (delivery.environment, delivery.ref) == ("production", "v2")
    with pytest.raises(InvalidInput, match=r"^invalid generic hook body \(ref\)$"):
        webhooks.parse_generic_body(encode({**json.loads(body), "ref": "--upload-pack=x"}), None)
    with pytest.raises(InvalidInput, match=r"^invalid generic hook body \(body\)$"):
        webhooks.parse_generic_body(b"not json", None)


GITLAB_PUSH = {
    "object_kind": "push",
    "event_name": "push",
    "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
    "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    "ref": "refs/heads/master",
    "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    "user_name": "John Smith",
    "project_id": 15,
    "project": {"name": "Hello", "path_with_namespace": "Group/Hello"},
    "total_commits_count": 1,
}


@pytest.mark.usefixtures("configured")
def test_a_gitlab_push_with_the_right_token_starts_a_deploy(
    session: Session, box: SecretBox
) -> None:
    body = encode(GITLAB_PUSH)
    with pytest.raises(DeliveryRejected) as rejected:
        webhooks.authenticate_gitlab(session=session, box=box, body=body, token="wrong-token")
    assert rejected.value.reason == "bad_signature"

    recipients = webhooks.authenticate_gitlab(session=session, box=box, body=body, token=SECRET)
    delivery = webhooks.parse_gitlab(body, "b3b7a8f0-uuid", "Push Hook")
    receipt = webhooks.receive(session=session, delivery=delivery, recipients=recipients)

    (pipeline,) = receipt.started
    assert pipeline.ref == GITLAB_PUSH["checkout_sha"]
    deleted = copy.deepcopy(GITLAB_PUSH) | {"after": "0" * 40, "checkout_sha": None}
    gone = webhooks.receive(
        session=session,
        delivery=webhooks.parse_gitlab(encode(deleted), "another-uuid", "Push Hook"),
        recipients=recipients,
    )
    assert (gone.outcome, gone.reason) == ("ignored", "refs/heads/master was deleted")


@pytest.mark.usefixtures("configured")
def test_the_generic_hook_deploys_the_named_ref_to_the_named_environment(
    session: Session, box: SecretBox
) -> None:
    body = encode({"app": "web", "environment": "production", "ref": "v2"})
    with pytest.raises(DeliveryRejected) as unknown:
        other = encode({"app": "nope", "environment": "production", "ref": "v2"})
        webhooks.authenticate_generic(
            session=session, box=box, body=other, signature=webhooks.sign(SECRET, other)
        )
    assert unknown.value.reason == "unknown_app"

    app = webhooks.authenticate_generic(
        session=session, box=box, body=body, signature=webhooks.sign(SECRET, body)
    )
    receipt = webhooks.receive(
        session=session,
        delivery=webhooks.parse_generic(None, "production", "v2"),
        recipients=[app],
    )
    missing = webhooks.receive(
        session=session,
        delivery=webhooks.parse_generic("ci-2", "qa", "v2"),
        recipients=[app],
    )

    (pipeline,) = receipt.started
    assert pipeline.ref == "v2"
    assert missing.reason == "environment 'qa' of app 'web' does not exist"


def test_the_secret_is_stored_encrypted_generated_once_and_rotated_on_request(
    session: Session, box: SecretBox, app: App, staging: Environment
) -> None:
    config, generated = hook_config.configure(
        session=session, box=box, app=app, data=HookConfigUpdate()
    )
    assert generated is not None and len(generated) >= 32
    assert generated not in config.secret
    assert box.decrypt(config.secret) == generated

    _, kept = hook_config.configure(
        session=session, box=box, app=app, data=HookConfigUpdate(github_repository="a/b")
    )
    _, rotated = hook_config.configure(
        session=session, box=box, app=app, data=HookConfigUpdate(rotate_secret=True)
    )

    assert kept is None
    assert rotated is not None and rotated != generated
    assert box.decrypt(config.secret) == rotated
    public = hook_config.config_public(app=app, config=config)
    assert public.secret is None
    with pytest.raises(NotFound):
        hook_config.configure(
            session=session,
            box=box,
            app=app,
            data=HookConfigUpdate(rules=[HookRule(branch="main", environment="nowhere")]),
        )


def test_rotating_the_key_re_encrypts_hook_secrets(
    session: Session, app: App, staging: Environment
) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    hook_config.configure(
        session=session, box=SecretBox(old), app=app, data=HookConfigUpdate(secret=SECRET)
    )

    rotated = hook_config.rotate_hook_secrets(session=session, box=SecretBox(new + b"," + old))

    config = hook_config.get_config(session=session, app=app)
    assert rotated == 1
    assert SecretBox(new).decrypt(config.secret) == SECRET
