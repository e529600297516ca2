"""service/credentials.py: tenants' provider keys sealed with AES-GCM under the master key."""

import asyncio
import base64
import dataclasses
import os

import pytest

from service.credentials import CredentialError, CredentialStore, TenantCredentials
from service.llm import ProviderUnavailable
from service.store.sqlite import SqliteStore

MASTER = base64.b64encode(os.urandom(32)).decode()


def _run(tmp_path, scenario) -> None:
    """Runs scenario(store) against a fresh SQLite store."""

    async def main():
        store = SqliteStore(str(tmp_path / "c.db"))
        await store.open()
        try:
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(main())


def test_a_key_is_sealed_bound_to_its_tenant_and_opened_only_with_the_master_key(tmp_path):
    async def scenario(store):
        credentials = CredentialStore(store, MASTER)
        record = await credentials.set("acme", "openai", "sk-secret-1234", "http://llm.local/v1")
        assert "sk-secret" not in record.to_bytes().decode() and record.fingerprint == "1234"
        assert [r.provider for r in await credentials.all("acme")] == ["openai"]
        assert await credentials.all("other") == []
        opened = credentials.open((await credentials.all("acme"))[0])
        assert (opened.api_key, opened.api_base) == ("sk-secret-1234", "http://llm.local/v1")
        assert "sk-secret" not in repr(opened)
        moved = dataclasses.replace(record, tenant="other")  # a ciphertext copied to another tenant
        with pytest.raises(CredentialError):
            credentials.open(moved)
        wrong = CredentialStore(store, base64.b64encode(os.urandom(32)).decode())
        with pytest.raises(CredentialError, match="not the key they were stored with"):
            wrong.open(record)
        with pytest.raises(ProviderUnavailable, match="ASSISTD_MASTER_KEY"):
            await TenantCredentials(wrong).for_tenant("acme")
        assert await TenantCredentials(wrong).for_tenant("other") == {}  # none: the server's keys
        with pytest.raises(CredentialError, match="is not set"):
            await CredentialStore(store, "").set("acme", "openai", "sk-x")
        assert await credentials.delete("acme", "openai") and await credentials.all("acme") == []

    _run(tmp_path, scenario)


def test_a_tenants_credentials_are_read_once_then_cached(tmp_path):
    async def scenario(store):
        credentials = CredentialStore(store, MASTER)
        await credentials.set("acme", "openai", "sk-first")
        now = [0.0]
        cache = TenantCredentials(credentials, clock=lambda: now[0])
        assert (await cache.for_tenant("acme"))["openai"].api_key == "sk-first"
        await credentials.set("acme", "openai", "sk-second")
        assert (await cache.for_tenant("acme"))["openai"].api_key == "sk-first"  # cached
        now[0] += 31
        assert (await cache.for_tenant("acme"))["openai"].api_key == "sk-second"

    _run(tmp_path, scenario)
