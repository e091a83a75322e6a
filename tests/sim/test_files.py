"""``/v1/files``: an upload kept byte for byte, listed, read back and deleted, over sockets."""

from __future__ import annotations

import hashlib
import io
import os

import httpx
import openai
import pytest

from frugal.sim.files import FileStore
from tests.sim.serving import SimFactory, sdk, stats


async def test_an_upload_comes_back_byte_for_byte(url: str) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # past starlette's in-memory spool
    async with sdk(url) as client:
        uploaded = await client.files.create(
            file=("train.jsonl", io.BytesIO(payload)), purpose="fine-tune"
        )
        fetched = await client.files.retrieve(uploaded.id)
        content = await client.files.content(uploaded.id)
    async with httpx.AsyncClient(base_url=url) as client:
        received = (await client.get(f"/sim/files/{uploaded.id}")).json()
        raw = await client.get(f"/v1/files/{uploaded.id}/content")

    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert (uploaded.filename, uploaded.purpose) == ("train.jsonl", "fine-tune")
    assert uploaded.bytes == len(payload) and uploaded.status == "processed"
    assert fetched == uploaded
    assert content.content == payload
    assert raw.headers["content-type"] == "application/octet-stream"
    assert received == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    assert stats(url)["endpoints"]["/v1/files"] == {"calls": 4, "prompts": 0, "tokens": 0}


async def test_files_are_listed_newest_first_and_deleted(url: str) -> None:
    async with sdk(url) as client:
        batch = await client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
        data = await client.files.create(file=("d.txt", b"data"), purpose="user_data")
        listed = [f.id async for f in client.files.list()]
        only_batch = [f.id async for f in client.files.list(purpose="batch")]
        oldest_first = [f.id async for f in client.files.list(order="asc")]
        deleted = await client.files.delete(data.id)
        with pytest.raises(openai.NotFoundError) as gone:
            await client.files.retrieve(data.id)
        remaining = [f.id async for f in client.files.list()]

    assert listed[:2] == [data.id, batch.id]
    assert batch.id in only_batch and data.id not in only_batch
    assert oldest_first.index(batch.id) < oldest_first.index(data.id)
    assert deleted.id == data.id and deleted.deleted
    assert gone.value.param == "id" and data.id in gone.value.message
    assert data.id not in remaining and batch.id in remaining


async def test_list_pages_after_a_cursor(url: str) -> None:
    async with sdk(url) as client:
        ids = [
            (await client.files.create(file=(f"{i}.txt", b"x"), purpose="assistants")).id
            for i in range(3)
        ]
        page = await client.files.list(limit=2, purpose="assistants", order="asc", after=ids[0])
    assert [f.id for f in page.data] == ids[1:] and not page.has_more


@pytest.mark.parametrize(
    ("files", "data", "param"),
    [
        ({"file": ("a.txt", b"x")}, {"purpose": "nonsense"}, "purpose"),
        ({"file": ("a.txt", b"x")}, {}, "purpose"),
        (None, {"purpose": "batch", "file": "not a file part"}, "file"),
    ],
)
async def test_bad_uploads_get_a_400_naming_the_field(
    url: str, files: dict[str, tuple[str, bytes]] | None, data: dict[str, str], param: str
) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        if files is None:  # a multipart body without a file part
            response = await client.post("/v1/files", files={"other": ("o", b"")}, data=data)
        else:
            response = await client.post("/v1/files", files=files, data=data)
        listed = (await client.get("/v1/files")).json()["data"]
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert all(f["filename"] != "a.txt" for f in listed)


async def test_a_json_body_is_not_an_upload(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/v1/files", json={"purpose": "batch"})
    assert response.status_code == 400 and "multipart" in response.json()["error"]["message"]


async def test_unknown_ids_are_openai_404s(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        answers = [
            await client.get("/v1/files/file-nothing"),
            await client.get("/v1/files/file-nothing/content"),
            await client.delete("/v1/files/file-nothing"),
            await client.get("/sim/files/file-nothing"),
        ]
    assert [a.status_code for a in answers] == [404] * 4
    assert all(a.json()["error"]["type"] == "invalid_request_error" for a in answers)
    assert stats(url)["rejected"]["not_found"] == 3  # /sim/files is not a call


async def test_a_refused_upload_is_not_kept(make_sim: SimFactory) -> None:
    url = make_sim(require_api_key="sk-right", error_rate=1.0)
    async with sdk(url, key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.files.create(file=("a.txt", b"x"), purpose="batch")
    async with sdk(url, key="sk-right") as client:
        with pytest.raises(openai.InternalServerError):
            await client.files.create(file=("a.txt", b"x"), purpose="batch")
    async with httpx.AsyncClient(base_url=url) as client:
        await client.post("/sim/faults", json={"error_rate": 0})
        listed = await client.get("/v1/files", headers={"Authorization": "Bearer sk-right"})
    assert listed.json()["data"] == []


async def test_a_dropped_download_closes_the_connection_midway(make_sim: SimFactory) -> None:
    url = make_sim()
    async with sdk(url) as client:
        uploaded = await client.files.create(file=("a.bin", os.urandom(4096)), purpose="batch")
    async with httpx.AsyncClient(base_url=url) as client:
        await client.post("/sim/faults", json={"drop_rate": 1.0})
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"/v1/files/{uploaded.id}/content")
    assert stats(url)["rejected"]["dropped"] == 1


async def test_the_store_evicts_the_oldest_files_and_closes_its_folder() -> None:
    store = FileStore(max_files=2, max_total_bytes=10)
    first = await store.add(io.BytesIO(b"1234"), filename="a", purpose="batch")
    second = await store.add(io.BytesIO(b"5678"), filename="b", purpose="batch")
    third = await store.add(io.BytesIO(b"9"), filename="c", purpose="batch")
    assert [f.id for f in store.listed()] == [second.id, third.id]
    assert not first.path.exists() and third.path.read_bytes() == b"9"
    big = await store.add(io.BytesIO(b"x" * 8), filename="d", purpose="batch")
    assert [f.id for f in store.listed()] == [third.id, big.id]  # within 10 bytes
    folder = big.path.parent
    store.close()
    assert not folder.exists() and store.listed() == []
