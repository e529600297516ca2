"""service/auth.py: keys as salted hashes, env keys by digest, dev mode."""

import asyncio
import hashlib

import pytest

from service.auth import DEV_TENANT, Authenticator, KeyStore, derived_tenant, parse_env_keys
from service.errors import Unauthenticated
from service.store.sqlite import SqliteStore


def _bearer(key: str):
    return [("authorization", f"Bearer {key}")]


def test_env_keys_are_held_as_digests_and_a_bare_key_is_not_its_tenant():
    keys = parse_env_keys({"k1": "acme", "bare": "bare", f"sha256:{hashlib.sha256(b'k2').hexdigest()}": "beta"})
    assert set(keys.values()) == {"acme", derived_tenant("bare"), "beta"}
    assert all(isinstance(digest, bytes) and len(digest) == 32 for digest in keys)
    assert "bare" not in derived_tenant("bare")


def test_authenticator_modes(tmp_path):
    async def scenario():
        store = SqliteStore(str(tmp_path / "a.db"))
        await store.open()
        try:
            dev = Authenticator({}, store)
            await dev.open()
            assert await dev.tenant(_bearer("anything")) == DEV_TENANT
            record, key = await KeyStore(store).create("acme")
            assert record.hash != key and key not in record.to_bytes().decode()
            assert await dev.tenant(_bearer(key)) == "acme"  # a store key is checked even in dev mode
            keyed = Authenticator({}, store)
            await keyed.open()  # the store holds a key now: no dev mode
            with pytest.raises(Unauthenticated):
                await keyed.tenant(_bearer("anything"))
            with pytest.raises(Unauthenticated):
                await keyed.tenant(_bearer(key + "x"))
            assert await keyed.tenant(_bearer(key)) == "acme"
            await KeyStore(store).revoke(record.id)
            for auth in (dev, keyed):
                with pytest.raises(Unauthenticated):
                    await auth.tenant(_bearer(key))
            env = Authenticator({"k1": "acme"})
            assert await env.tenant(_bearer("k1")) == "acme"
            with pytest.raises(Unauthenticated):
                await env.tenant([("authorization", "Basic k1")])
        finally:
            await store.close()

    asyncio.run(scenario())
