from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from meshops.kernel.blobs import BlobStore
from meshops.kernel.errors import InvalidInput, NotFound


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(str(tmp_path / "blobs"))
    endpoint = request.getfixturevalue("moto_endpoint")
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    bucket = f"b{abs(hash(str(tmp_path))) % 10**8}"
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    return BlobStore(f"s3://{bucket}/meshops", options)


def test_put_and_get_by_digest(store: BlobStore, tmp_path: Path) -> None:
    data = b"hello meshops" * 1000
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.exists(digest)
    assert store.get_bytes(digest) == data
    assert store.put_bytes(data) == digest  # same content, same blob
    src = tmp_path / "f.bin"
    src.write_bytes(b"file content")
    file_digest = store.put_file(src)
    with store.local_path(file_digest) as local:
        assert local.read_bytes() == b"file content"
    with store.open(file_digest) as fh:
        assert fh.read() == b"file content"


def test_streaming_writer(store: BlobStore) -> None:
    with store.writer() as (fh, result):
        fh.write(b"a" * 10)
        fh.write(b"b" * 10)
    assert store.get_bytes(result[0]) == b"a" * 10 + b"b" * 10


def test_missing_and_invalid_digests(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.get_bytes("0" * 64)
    with pytest.raises(InvalidInput):
        store.get_bytes("../../etc/passwd")


def test_local_writes_leave_no_partial_files(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    store.put_bytes(b"x" * 100)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
