"""API key -> tenant. Every read and write in the service is scoped to the tenant.

Where keys come from:
- the store: keys made by `assistd keys create --tenant T`, shaped `sk-assistd-<id>-<secret>`.
  Only the id, the tenant, a random salt and SHA-256(salt + secret) are kept; the key itself is
  shown once, at creation. `assistd keys revoke <id>` makes it fail at once (no cache).
- ASSISTD_API_KEYS: `key=tenant,...`, or `sha256:<hex of the key's SHA-256>=tenant` so the
  environment need not hold the key. A bare `key` (no `=tenant`) gets a tenant id derived from
  the key's hash, never the key itself.
With neither (no ASSISTD_API_KEYS and no key in the store at start), the service runs in
single-tenant dev mode: any other key is accepted as the one tenant DEV_TENANT, and the key
presented is never stored. A store key is checked in every mode.
"""

import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass

from service.errors import Unauthenticated
from service.limits import RequestRate
from service.store import ListQuery, Record, Store

DEV_TENANT = "default"
KEY_PREFIX = "sk-assistd-"
# Keys live under a tenant no caller can be: tenant names may not start with "_".
KEYS_TENANT = "_assistd"
KEYS_KIND = "api_key"
_ID_LENGTH = 16  # hex characters of a key's id
log = logging.getLogger(__name__)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def derived_tenant(key: str) -> str:
    """The tenant of a bare ASSISTD_API_KEYS key: from its hash, so the key is never stored."""
    return "tenant_" + _digest(key).hex()[:16]


def parse_env_keys(keys: dict[str, str]) -> dict[bytes, str]:
    """ASSISTD_API_KEYS entries as {SHA-256 of the key: tenant}."""
    by_digest = {}
    for key, tenant in keys.items():
        if key.startswith("sha256:"):
            by_digest[bytes.fromhex(key.removeprefix("sha256:"))] = tenant
        else:
            by_digest[_digest(key)] = derived_tenant(key) if tenant == key else tenant
    return by_digest


@dataclass(frozen=True)
class StoredKey:
    id: str
    tenant: str
    salt: str
    hash: str  # hex SHA-256 of salt + secret
    created_at: int
    name: str = ""
    revoked_at: int | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "StoredKey":
        return cls(**json.loads(data))


def _salted(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    """(id, secret) of a store key, None for any other string."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, dash, secret = key.removeprefix(KEY_PREFIX).partition("-")
    if len(key_id) != _ID_LENGTH or not dash or not secret:
        return None
    return key_id, secret


class KeyStore:
    """The API keys kept in the store."""

    def __init__(self, store: Store):
        self._store = store

    async def create(self, tenant: str, name: str = "") -> tuple[StoredKey, str]:
        """A new key for tenant: (its record, the key, which is not kept)."""
        if not tenant or tenant.startswith("_") or len(tenant) > 64 or not tenant.isprintable():
            raise ValueError("a tenant is 1-64 printable characters, not starting with '_'")
        key_id, secret, salt = secrets.token_hex(_ID_LENGTH // 2), secrets.token_urlsafe(32), secrets.token_hex(16)
        record = StoredKey(key_id, tenant, salt, _salted(salt, secret), int(time.time()), name)
        await self._store.put(KEYS_TENANT, [Record(KEYS_KIND, "", key_id, record.to_bytes())])
        return record, f"{KEY_PREFIX}{key_id}-{secret}"

    async def get(self, key_id: str) -> StoredKey | None:
        data = await self._store.get(KEYS_TENANT, KEYS_KIND, "", key_id)
        return StoredKey.from_bytes(data) if data is not None else None

    async def all(self) -> list[StoredKey]:
        keys, after = [], ""
        while True:
            page = await self._store.list_page(
                KEYS_TENANT, KEYS_KIND, "", ListQuery(limit=100, order="asc", after=after)
            )
            keys += [StoredKey.from_bytes(item) for item in page.items]
            if not page.has_more or not page.items:
                return keys
            after = keys[-1].id

    async def any(self) -> bool:
        return bool((await self._store.list_page(KEYS_TENANT, KEYS_KIND, "", ListQuery(limit=1))).items)

    async def revoke(self, key_id: str) -> StoredKey | None:
        record = await self.get(key_id)
        if record is None:
            return None
        if record.revoked_at is None:
            record = StoredKey(**{**record.__dict__, "revoked_at": int(time.time())})
            await self._store.put(KEYS_TENANT, [Record(KEYS_KIND, "", key_id, record.to_bytes())])
        return record

    async def tenant(self, key: str) -> str | None:
        """The tenant of a live store key, None otherwise."""
        parts = _split(key)
        if parts is None:
            return None
        record = await self.get(parts[0])
        if record is None or record.revoked_at is not None:
            return None
        return record.tenant if hmac.compare_digest(_salted(record.salt, parts[1]), record.hash) else None


class Authenticator:
    def __init__(self, api_keys: dict[str, str], store: Store | None = None, rate: RequestRate | None = None):
        self._env = parse_env_keys(api_keys)
        self._rate = rate
        self._keys = KeyStore(store) if store is not None else None
        self._dev = not self._env

    async def open(self) -> None:
        """Leaves dev mode when the store holds keys."""
        if self._dev and self._keys is not None and await self._keys.any():
            self._dev = False
        if self._dev:
            log.warning(
                "no API keys (ASSISTD_API_KEYS or `assistd keys`): single-tenant dev mode, any API key is accepted"
            )

    async def tenant(self, metadata) -> str:
        """The tenant of the `authorization: Bearer <key>` metadata entry, once the call is counted
        against the tenant's request rate (RateLimitExceeded over it). Every call resolves its
        tenant here once, so this is where the rate is kept."""
        tenant = await self._resolve(metadata)
        if self._rate is not None:
            self._rate.spend(tenant)
        return tenant

    async def _resolve(self, metadata) -> str:
        header = next((value for key, value in metadata or () if key == "authorization"), "")
        scheme, _, key = header.partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        if key.startswith(KEY_PREFIX) and self._keys is not None:
            tenant = await self._keys.tenant(key)
        else:
            tenant = self._env_tenant(key)
            if tenant is None and self._dev:
                return DEV_TENANT
        if tenant is None:
            raise Unauthenticated("Incorrect API key provided.", code="invalid_api_key")
        return tenant

    def _env_tenant(self, key: str) -> str | None:
        presented = _digest(key)
        found = None
        for digest, tenant in self._env.items():  # every entry compared, in constant time each
            if hmac.compare_digest(digest, presented):
                found = tenant
        return found
