"""Authentication and admin authorization: the one path every route takes.

`authenticate` turns a bearer token into a `KeyInfo` (the master key is one too), or
None for an anonymous caller where the gateway is open. `authorize_admin` lets only the
master key through, and with no master key configured nobody: the `llmops keys` CLI
works on the database directly, so an open admin API would add nothing but a hole.
"""

from __future__ import annotations

from llmops.errors import AuthenticationError, PermissionDenied
from llmops.governance.keys import MASTER, MASTER_ID, KeyInfo, KeyStore

__all__ = ["MASTER", "Access"]


class Access:
    """Modes: open (no master key, `auth: open`), keys required (`auth: keys`), master
    key set (keys required, admin routes on)."""

    def __init__(self, keys: KeyStore, *, master_key_set: bool, keys_required: bool):
        self.keys = keys
        self.master_key_set = master_key_set
        self.keys_required = keys_required or master_key_set

    async def authenticate(self, token: str | None) -> KeyInfo | None:
        result = await self.keys.check(token)
        if result.info is not None:
            return result.info
        # A key that was revoked or expired is refused in every mode: its holder learns
        # why, and it cannot shed its own limits by calling an open gateway.
        if result.reason in ("revoked", "expired") or self.keys_required:
            raise result.error()
        return None  # open gateway: no key, or a string that is no key of ours

    def authorize_admin(self, identity: KeyInfo | None) -> None:
        if identity is not None and identity.id == MASTER_ID:
            return
        if not self.master_key_set:
            raise PermissionDenied(
                "the admin API is off: start the gateway with LLMOPS_MASTER_KEY set and call it with that key "
                "(the `llmops keys` commands work on the database directly)",
                code="master_key_required",
            )
        if identity is None:
            raise AuthenticationError(
                "this route needs the master key: send 'Authorization: Bearer <LLMOPS_MASTER_KEY>'",
                code="master_key_required",
            )
        raise PermissionDenied(
            f"this route needs the master key; {identity.label} is a virtual key", code="master_key_required"
        )
