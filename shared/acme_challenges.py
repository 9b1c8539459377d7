"""ACME HTTP-01 challenges in flight: keys on the broker that every router reads.

The worker ordering a certificate (workers.acme) puts each challenge's key authorization here
before it tells the CA to validate; the CA then asks `http://DOMAIN/.well-known/acme-challenge/
TOKEN` of whichever run host the domain's DNS names, and that host's router answers from here
(serve.acme_responder). So every router of every host answers at once, with nothing to sync.
A key authorization is not a secret (the CA publishes the token; the thumbprint is of the
account's public key), but it lives only as long as the order can need it.
"""

from __future__ import annotations

import re

import redis

# Longer than an order may take (the worker gives up on one after a few minutes).
KEPT_SECONDS = 3600
# RFC 8555 §8.3: the token is base64url, without padding; anything else is not ours to look up.
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
PATH_PREFIX = "/.well-known/acme-challenge/"


def _key(namespace: str, token: str) -> str:
    return f"{namespace}:acme:http01:{token}"


def put(client: redis.Redis, namespace: str, token: str, key_authorization: str) -> None:
    """Answer `token` with `key_authorization` on every router (for KEPT_SECONDS at most)."""
    if not TOKEN.match(token):
        raise ValueError("an ACME token is base64url")
    client.set(_key(namespace, token), key_authorization, ex=KEPT_SECONDS)


def get(client: redis.Redis, namespace: str, token: str) -> str | None:
    """The key authorization that answers `token`, if one is in flight."""
    if not TOKEN.match(token):
        return None
    value = client.get(_key(namespace, token))
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def drop(client: redis.Redis, namespace: str, token: str) -> None:
    """The challenge is over (validated or given up)."""
    if TOKEN.match(token):
        client.delete(_key(namespace, token))
