"""HTTPS end to end on `shipyard up`, against a real ACME CA (pebble) and the real router: a domain
added to a live environment gets a certificate that HAProxy serves for its SNI; plain HTTP is
redirected; deploys, rollbacks and a renewal under HTTPS keep-alive load fail no request; with the
CA down a renewal is retried and the stored certificate keeps serving, across a restart."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acme_support import Pebble, running_pebble
from tests.integration.stack import Stack, free_port
from tests.integration.traffic import Load, router_client
from tests.integration.up import UpFactory, restart_up, wait_for

APP = "shop"
ENV = "production"
DOMAIN = "shop.example.test"
ENV_PATH = f"/v1/apps/{APP}/environments/{ENV}"


def _tls_context(pebble: Pebble) -> ssl.SSLContext:
    """Trusts what pebble issues (its root is new at each start), and nothing else."""
    return ssl.create_default_context(cadata=pebble.root_pem())


def _served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The leaf certificate the router presents for DOMAIN (verified against `context`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _https_client(port: int, context: ssl.SSLContext) -> Callable[[str], httpx.Client]:
    """Clients of https://DOMAIN on the router's HTTPS port (SNI and Host: DOMAIN)."""

    def connect(_url: str) -> httpx.Client:
        def sni(request: httpx.Request) -> None:
            request.extensions["sni_hostname"] = DOMAIN

        return httpx.Client(
            base_url=f"https://127.0.0.1:{port}",
            headers={"Host": DOMAIN},
            verify=context,
            trust_env=False,
            timeout=30,
            event_hooks={"request": [sni]},
        )

    return connect


def _certificate(stack: Stack) -> dict[str, Any]:
    (row,) = [c for c in stack.api("GET", f"{ENV_PATH}/certs", 200) if c["domain"] == DOMAIN]
    return dict(row)


def _finished(stack: Stack, started: dict[str, Any]) -> None:
    assert stack.wait_pipeline(started["id"])["status"] == "succeeded"


@pytest.mark.timeout(600)
def test_a_domain_gets_a_certificate_served_by_sni_through_deploys_renewals_and_a_ca_outage(
    start_up: UpFactory, hello_repo: Path, tmp_path: Path
) -> None:
    router_port, https_port = free_port(), free_port()
    with running_pebble(tmp_path / "pebble", http_port=router_port) as pebble:
        stack = start_up(
            SHIPYARD_ROUTER_PORT=str(router_port),
            SHIPYARD_ROUTER_HTTPS_PORT=str(https_port),
            SHIPYARD_ACME_DIRECTORY_URL=pebble.directory_url,
            SHIPYARD_ACME_CA_BUNDLE=str(pebble.ca_bundle),
            SHIPYARD_ACME_CHECK_SECONDS="1",
        )
        stack.api("POST", "/v1/apps", 201, json={"name": APP, "repo": str(hello_repo)})
        stack.api("POST", f"/v1/apps/{APP}/environments", 201, json={"name": ENV})
        assert stack.deploy(APP, ENV)["status"] == "succeeded"

        # A domain added to the live environment: ordered at once, validated through the router.
        added = stack.run_cli("domains", "add", DOMAIN, "-a", APP, "-e", ENV)
        assert DOMAIN in added.stdout
        wait_for(
            lambda: _certificate(stack)["status"] == "issued",
            f"pebble to issue {DOMAIN}'s certificate (it validates through the router)",
            stack,
        )
        context = _tls_context(pebble)
        wait_for(
            lambda: _answers_https(https_port, context),
            f"the router to serve {DOMAIN} over HTTPS with pebble's certificate",
            stack,
        )
        first = _served_certificate(https_port, context)
        listed = stack.run_cli("certs", "-a", APP, "-e", ENV).stdout
        assert "shop.example" in listed and "issued" in listed  # cut to 80 columns

        # Plain HTTP to the domain is sent to HTTPS; the challenge path is not.
        with router_client(f"http://{DOMAIN}:{router_port}") as http:
            redirected = http.get("/some/page?x=1")
            challenge = http.get("/.well-known/acme-challenge/" + "a" * 43)
        assert redirected.status_code == 308
        assert redirected.headers["location"] == f"https://{DOMAIN}:{https_port}/some/page?x=1"
        # Answered by the router's own responder (not redirected, not the app's).
        assert (challenge.status_code, challenge.text) == (404, "no such challenge in flight\n")

        # Under HTTPS keep-alive load: a config deploy, a rollback and a forced renewal.
        load = Load(f"https://{DOMAIN}", connect=_https_client(https_port, context))
        load.start()
        try:
            _finished(stack, _config(stack, "GREETING=second"))
            wait_for(lambda: _said(load, "second"), "the load to see the new release", stack)
            _finished(stack, stack.api("POST", f"{ENV_PATH}/rollback", 202, json={}))
            renewed = stack.run_cli("certs", "renew", DOMAIN, "-a", APP, "-e", ENV)
            assert renewed.returncode == 0, renewed.stderr
            wait_for(
                lambda: _served_certificate(https_port, context) != first,
                "the renewed certificate to be served in place of the first",
                stack,
            )
            wait_for(lambda: _said(load, "Hello"), "the load to see the rolled-back release", stack)
        finally:
            load.stop()
        assert load.errors == [] and len(load.answers) > 50
        assert [a for a in load.answers if a[2] != 200] == []
        second = _served_certificate(https_port, context)

        # The CA away: a renewal is retried with backoff, the stored certificate keeps serving,
        # also by a router restarted with no CA to ask.
        pebble.stop()
        stack.run_cli("certs", "renew", DOMAIN, "-a", APP, "-e", ENV)
        wait_for(
            lambda: _certificate(stack)["attempts"] >= 1,
            "the renewal to fail against the stopped CA and be scheduled again",
            stack,
        )
        failed = _certificate(stack)
        assert failed["status"] == "issued" and failed["error"]
        assert failed["next_attempt_at"] is not None
        assert _served_certificate(https_port, context) == second
        stack.stop("up")
        restart_up(stack)
        wait_for(
            lambda: _answers_https(https_port, context),
            "the restarted router to serve the stored certificate",
            stack,
        )
        assert _served_certificate(https_port, context) == second


def _config(stack: Stack, assignment: str) -> dict[str, Any]:
    key, _, value = assignment.partition("=")
    body = {"vars": {key: value}, "deploy": True}
    result = stack.patch_config(APP, ENV, body)
    return {"id": result["pipeline_id"]}


def _said(load: Load, text: str) -> bool:
    return any(text in answer[3] for answer in load.answers[-20:])


def _answers_https(port: int, context: ssl.SSLContext) -> bool:
    try:
        with _https_client(port, context)("") as client:
            return client.get("/").status_code == 200
    except (httpx.HTTPError, ssl.SSLError, OSError):
        return False
