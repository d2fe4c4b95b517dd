"""Bearer tokens, checked the way the MCP SDK asks a resource server to check them.

The SDK calls ``verify_token`` for every HTTP request. A token foureyes issued (``foureyes
principals``) stands for its principal with that principal's scopes *now*, so a revoked token
or a disabled principal is refused on the next request. Anything else gets ``None``, and the
SDK answers it 401 with the protected-resource metadata URL and no detail: the caller cannot
tell an unknown token from a revoked one.
"""

from __future__ import annotations

import anyio.to_thread
from mcp.server.auth.provider import AccessToken

from foureyes.resources.control_plane.principal_book import Principal, PrincipalBook

KIND, AUTHENTICATED_BY = "foureyes_kind", "foureyes_authenticated_by"


class PrincipalTokenVerifier:
    """The SDK's ``TokenVerifier`` over the control plane's principals."""

    def __init__(self, principals: PrincipalBook):
        self._principals = principals

    async def verify_token(self, token: str) -> AccessToken | None:
        found = await anyio.to_thread.run_sync(self._principals.authenticate, token)
        if found is None:
            return None
        return AccessToken(
            token=token,
            client_id=found.name,
            scopes=list(found.scopes),
            subject=found.name,
            claims={KIND: found.kind, AUTHENTICATED_BY: found.authenticated_by},
        )


def principal_of(token: AccessToken) -> Principal:
    """The principal an access token the verifier issued stands for."""
    claims = token.claims or {}
    return Principal(
        name=token.client_id,
        kind=str(claims.get(KIND, "")),
        scopes=tuple(token.scopes),
        authenticated_by=str(claims.get(AUTHENTICATED_BY, "token")),
    )
