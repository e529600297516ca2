"""API key -> tenant. Every read and write in the service is scoped to the tenant."""

import logging

from service.errors import Unauthenticated

DEV_TENANT = "default"
log = logging.getLogger(__name__)


class Authenticator:
    def __init__(self, api_keys: dict[str, str]):
        self._keys = dict(api_keys)
        if not self._keys:
            log.warning("ASSISTD_API_KEYS is not set: single-tenant dev mode, any API key is accepted")

    def tenant(self, metadata) -> str:
        """The tenant of the `authorization: Bearer <key>` metadata entry."""
        if not self._keys:
            return DEV_TENANT
        header = next((value for key, value in metadata or () if key == "authorization"), "")
        scheme, _, key = header.partition(" ")
        tenant = self._keys.get(key.strip()) if scheme.lower() == "bearer" else None
        if tenant is None:
            raise Unauthenticated("Incorrect API key provided.", code="invalid_api_key")
        return tenant
