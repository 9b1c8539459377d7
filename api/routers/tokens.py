"""API tokens: `/v1/tokens` (admin only)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from shipyard.api.auth import PrincipalDep
from shipyard.api.deps import SessionDep
from shipyard.shared.schemas import TokenCreate, TokenCreated, TokenPublic
from shipyard.shared.services import tokens

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_token(data: TokenCreate, session: SessionDep) -> TokenCreated:
    """A new scoped token; the token itself is in this answer only."""
    row, token = tokens.create_token(session=session, name=data.name, scopes=data.scopes)
    session.commit()
    return TokenCreated(
        **TokenPublic.model_validate(row, from_attributes=True).model_dump(), token=token
    )


@router.get("")
def list_tokens(session: SessionDep, principal: PrincipalDep) -> list[TokenPublic]:
    """Every token, without the tokens themselves."""
    principal.require_admin()
    return [
        TokenPublic.model_validate(t, from_attributes=True)
        for t in tokens.list_tokens(session=session)
    ]


@router.delete("/{token_id}")
def revoke_token(token_id: uuid.UUID, session: SessionDep) -> TokenPublic:
    """Revoke a token; it stops working at once."""
    row = tokens.revoke_token(session=session, token_id=token_id)
    session.commit()
    return TokenPublic.model_validate(row, from_attributes=True)
