"""Tenants' own provider credentials, kept in the store encrypted, and used by their runs.

`assistd credentials set --tenant T --provider openai --api-key ...` stores a tenant's key for a
provider. The key is encrypted with AES-256-GCM under ASSISTD_MASTER_KEY (base64 of 32 bytes), a
fresh 12-byte nonce each time, and the tenant and provider as associated data (a ciphertext moved
to another tenant's record does not decrypt). Without a master key nothing is stored. Only the
ciphertext, the api_base, the key's last four characters (its fingerprint) and the creation time
are kept; listing shows no key. Records live under the reserved tenant of service/auth.py.

A run of tenant T reads T's credentials (decrypted, then kept in memory for a few seconds) and
hands them to the provider adapter with each model request; a tenant with none uses the server's
keys. A master key that is missing or not the one the credentials were stored with fails the
run with a clear error, never another tenant's key or the server's.
"""

import asyncio
import base64
import binascii
import json
import logging
import os
import time
from dataclasses import asdict, dataclass

from service.auth import KEYS_TENANT
from service.llm.port import ProviderCredential, ProviderUnavailable
from service.store import ListQuery, Record, Store

log = logging.getLogger(__name__)
KIND = "provider_credential"  # under KEYS_TENANT, parent = the tenant, id = the provider
CACHE_SECONDS = 30.0  # how long a run's process keeps a tenant's decrypted credentials
_NONCE_BYTES = 12


class CredentialError(Exception):
    """A credential that cannot be stored or read: the message says why, and never holds a key."""


def parse_master_key(text: str) -> bytes:
    """ASSISTD_MASTER_KEY's 32 bytes. Raises CredentialError when it is missing or malformed."""
    if not text:
        raise CredentialError(
            "ASSISTD_MASTER_KEY is not set: provider credentials are stored encrypted under it "
            "(base64 of 32 random bytes, e.g. `openssl rand -base64 32`)."
        )
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise CredentialError("ASSISTD_MASTER_KEY must be base64 of exactly 32 bytes (`openssl rand -base64 32`).")
    return key


@dataclass(frozen=True)
class StoredCredential:
    tenant: str
    provider: str
    api_base: str
    fingerprint: str  # the key's last four characters
    created_at: int
    nonce: str  # base64
    ciphertext: str  # base64 of AES-GCM(key), tag included

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "StoredCredential":
        return cls(**json.loads(data))


def _aad(tenant: str, provider: str) -> bytes:
    return f"{tenant}\0{provider}".encode()


class CredentialStore:
    """The credentials kept in the store; master_key is ASSISTD_MASTER_KEY as given ("" = none)."""

    def __init__(self, store: Store, master_key: str = ""):
        self._store = store
        self._master_key = master_key

    def _cipher(self):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(parse_master_key(self._master_key))

    async def set(self, tenant: str, provider: str, api_key: str, api_base: str = "") -> StoredCredential:
        if not tenant or tenant.startswith("_") or len(tenant) > 64 or not tenant.isprintable():
            raise CredentialError("a tenant is 1-64 printable characters, not starting with '_'")
        if not provider or not provider.replace("_", "").replace("-", "").isalnum() or len(provider) > 64:
            raise CredentialError("a provider is a litellm provider name, e.g. openai, anthropic, azure")
        if not api_key:
            raise CredentialError("the API key is empty")
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher().encrypt(nonce, api_key.encode(), _aad(tenant, provider))
        record = StoredCredential(
            tenant,
            provider,
            api_base,
            api_key[-4:],
            int(time.time()),
            base64.b64encode(nonce).decode(),
            base64.b64encode(sealed).decode(),
        )
        await self._store.put(KEYS_TENANT, [Record(KIND, tenant, provider, record.to_bytes())])
        return record

    async def all(self, tenant: str) -> list[StoredCredential]:
        found, after = [], ""
        while True:
            page = await self._store.list_page(
                KEYS_TENANT, KIND, tenant, ListQuery(limit=100, order="asc", after=after)
            )
            found += [StoredCredential.from_bytes(item) for item in page.items]
            if not page.has_more or not page.items:
                return found
            after = found[-1].provider

    async def delete(self, tenant: str, provider: str) -> bool:
        return await self._store.delete(KEYS_TENANT, KIND, tenant, provider)

    def open(self, record: StoredCredential) -> ProviderCredential:
        """The decrypted credential. Raises CredentialError when the master key cannot open it."""
        from cryptography.exceptions import InvalidTag

        try:
            key = self._cipher().decrypt(
                base64.b64decode(record.nonce),
                base64.b64decode(record.ciphertext),
                _aad(record.tenant, record.provider),
            )
        except InvalidTag:
            raise CredentialError(
                f"The {record.provider} credentials of this tenant cannot be decrypted: ASSISTD_MASTER_KEY "
                "is not the key they were stored with."
            ) from None
        return ProviderCredential(key.decode(), record.api_base)


class TenantCredentials:
    """Each tenant's decrypted credentials, read from the store at most every CACHE_SECONDS."""

    def __init__(self, credentials: CredentialStore, clock=time.monotonic):
        self._credentials = credentials
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, ProviderCredential]]] = {}
        self._reading: dict[str, asyncio.Future] = {}

    async def for_tenant(self, tenant: str) -> dict[str, ProviderCredential]:
        """{provider: credential} of tenant ({} when it has none). Raises ProviderUnavailable
        when it has some that cannot be decrypted: its run fails, it never falls back."""
        cached = self._cache.get(tenant)
        if cached is not None and self._clock() - cached[0] < CACHE_SECONDS:
            return cached[1]
        if tenant not in self._reading:  # concurrent runs of a tenant share one read
            self._reading[tenant] = asyncio.ensure_future(self._read(tenant))
            self._reading[tenant].add_done_callback(lambda _: self._reading.pop(tenant, None))
        return await asyncio.shield(self._reading[tenant])

    async def _read(self, tenant: str) -> dict[str, ProviderCredential]:
        records = await self._credentials.all(tenant)
        try:
            opened = {record.provider: self._credentials.open(record) for record in records}
        except CredentialError as exc:
            log.error("tenant %s: %s", tenant, exc)
            raise ProviderUnavailable(str(exc)) from None
        self._cache[tenant] = (self._clock(), opened)
        return opened
