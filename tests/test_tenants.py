"""Client keys: stored as salted hashes, compared in constant time, mapped to tenants."""

from __future__ import annotations

import hmac
import stat
from pathlib import Path

import pytest

from frugal import tenants
from frugal.errors import KeysFileError
from frugal.tenants import Keys, Tenant, add_key


def test_a_new_key_finds_its_tenant_and_is_stored_nowhere(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    acme, globex = add_key(path, "acme"), add_key(path, "globex")
    keys = Keys.load(path)
    assert len(keys) == 2
    assert keys.tenant_for(acme) == Tenant("acme", "acme")
    assert keys.tenant_for(globex) == Tenant("globex", "globex")
    text = path.read_text()
    for key in (acme, globex):
        assert key.split("_", 2)[2] not in text  # the secret part is nowhere in the file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wrong_unknown_and_malformed_keys_have_no_tenant(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = add_key(path, "acme")
    keys = Keys.load(path)
    prefix, key_id, secret = key.split("_", 2)
    for wrong in [
        f"{prefix}_{key_id}_{secret}x",
        f"{prefix}_00000000_{secret}",
        f"sk_{key_id}_{secret}",
        key_id,
        "",
        "fk__",
    ]:
        assert keys.tenant_for(wrong) is None


def test_secrets_are_compared_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = add_key(tmp_path / "keys.yaml", "acme")
    keys = Keys.load(tmp_path / "keys.yaml")
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(tenants.hmac, "compare_digest", recording)
    assert keys.tenant_for(key) is not None
    assert keys.tenant_for("fk_unknown_secret") is None  # an unknown id is compared too
    assert len(calls) == 2


def test_tenants_share_a_namespace_only_by_configuration(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    acme, globex, initech = (add_key(path, t) for t in ("acme", "globex", "initech"))
    path.write_text(
        path.read_text() + "tenants:\n  acme: {namespace: faq}\n  globex: {namespace: faq}\n"
    )
    keys = Keys.load(path)
    assert keys.tenant_for(acme) == Tenant("acme", "faq")
    assert keys.tenant_for(globex) == Tenant("globex", "faq")
    assert keys.tenant_for(initech) == Tenant("initech", "initech")


@pytest.mark.parametrize(
    "text",
    [
        "keys: [{id: x, tenant: t}]\n",
        "- not a mapping\n",
        "keys:\n  - {id: '', tenant: t, salt: s, sha256: h}\n",
        "tenants: {a: {namespace: ''}}\n",
    ],
)
def test_a_malformed_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(KeysFileError):
        Keys.load(path)
