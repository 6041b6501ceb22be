"""The log reader against real tables on the session S3 server: checkpoints, incremental refresh."""

from __future__ import annotations

from typing import Any

from conftest import BUCKET, sales_rows
from deltalake import DeltaTable, write_deltalake
from s3_server import S3Endpoint

from storage_proxy.deltaview.config import S3Backend, TableLocation
from storage_proxy.deltaview.deltalog import LogReader
from storage_proxy.deltaview.store import S3Store


class Counting:
    """The real store, counting which log objects were fetched."""

    def __init__(self, inner: S3Store) -> None:
        self.inner = inner
        self.fetched: list[str] = []
        self.lists = 0

    async def get_bytes(self, bucket: str, key: str) -> bytes | None:
        self.fetched.append(key.rsplit("/", 1)[-1])
        return await self.inner.get_bytes(bucket, key)

    async def list_page(self, *a: Any) -> Any:
        self.lists += 1
        return await self.inner.list_page(*a)


async def test_checkpoint_then_incremental_refresh(s3srv: S3Endpoint, backend: Any) -> None:
    url = f"s3://{BUCKET}/logtest/cp"
    opts = s3srv.storage_options()
    for n in range(3):
        write_deltalake(
            url, sales_rows(n), partition_by=["region", "year"], storage_options=opts, mode="append"
        )
    DeltaTable(url, storage_options=opts).create_checkpoint()
    write_deltalake(
        url, sales_rows(9), partition_by=["region", "year"], storage_options=opts, mode="append"
    )
    store = await S3Store.open(
        S3Backend(s3srv.url, s3srv.region, s3srv.access_key, s3srv.secret_key)
    )
    try:
        spy = Counting(store)
        reader = LogReader(spy, TableLocation(BUCKET, "logtest/cp/"))  # type: ignore[arg-type]
        snap = await reader.load()
        assert snap.version == 3 and len(snap.files) == 4 * 4
        assert snap.partition_columns == ("region", "year")
        assert spy.fetched == [
            "00000000000000000002.checkpoint.parquet",
            "00000000000000000003.json",
        ]
        assert {e.partition_values["region"] for e in snap.files.values()} == {"eu", "us", "asia"}
        spy.fetched.clear()
        assert await reader.refresh(snap) is None and spy.fetched == []
        write_deltalake(
            url,
            sales_rows(5),
            partition_by=["region", "year"],
            storage_options=opts,
            mode="overwrite",
        )
        newer = await reader.refresh(snap)
        assert newer is not None and newer.version == 4
        assert spy.fetched == ["00000000000000000004.json"]  # only the new commit
        assert len(newer.files) == 4 and not set(newer.files) & set(snap.files)
        assert len(snap.files) == 16  # the cached snapshot is not mutated
    finally:
        await store.aclose()
