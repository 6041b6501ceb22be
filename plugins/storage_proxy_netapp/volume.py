"""The ``netapp`` backend: data over the NFS mount of an ONTAP volume, quotas through ONTAP REST.

Everything that touches files is the NFS backend's (this class only adds to it); the quota model
is swapped for qtrees + tree quota rules + quota reports, capacity comes from the filer, and
snapshots are ONTAP volume snapshots seen through ``.snapshot`` (:mod:`.snapshots`).

Options: the NFS ones (``check-mount``, ``expected-fstypes``, ``attr-retry-timeout``, …) plus
``endpoint`` (``https://cluster-mgmt``), ``user``, ``password``, ``svm``, ``volume-name`` (the
ONTAP volume mounted at the volume path), ``verify-ssl`` (true; false only when set explicitly),
``job-timeout`` (seconds an ONTAP job may take) and ``job-poll-interval``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import trafaret as t

from storage_proxy.core.errors import PluginError
from storage_proxy.core.types import Capability, FSUsage, VFolderID
from storage_proxy_nfs import NFS_OPTIONS, NfsVolume

from .client import OntapClient
from .errors import OntapError
from .quota import NetAppQuotaModel
from .snapshots import SNAPSHOT_DIR, OntapSnapshots

NETAPP_OPTIONS: dict[t.Key, t.Trafaret] = {
    **NFS_OPTIONS,
    t.Key("endpoint"): t.URL,
    t.Key("user"): t.String(),
    t.Key("password"): t.String(allow_blank=True),
    t.Key("svm"): t.String(),
    t.Key("volume-name"): t.String(),
    t.Key("verify-ssl", default=True): t.ToBool(),
    t.Key("job-timeout", default=120.0): t.ToFloat(gt=0),
    t.Key("job-poll-interval", default=0.5): t.ToFloat(gt=0),
}


class NetAppVolume(OntapSnapshots, NfsVolume):
    backend_name = "netapp"
    capabilities = frozenset(
        {
            Capability.VFOLDER,
            Capability.QUOTA,
            Capability.NATIVE_QUOTA,
            Capability.FAST_USAGE,
            Capability.LOCAL_PATH,
            Capability.SNAPSHOT,
            Capability.NATIVE_SNAPSHOT,  # ONTAP volume snapshots, outside the tree quotas
            Capability.FILE_VERSIONS,
        }
    )
    options_schema = t.Dict(NETAPP_OPTIONS)
    #: ONTAP shows its snapshots as ``.snapshot`` in every directory of an NFS export (when the
    #: volume's snapdir is visible): no user path may pass through one.
    hidden_names: ClassVar[frozenset[str]] = frozenset({SNAPSHOT_DIR})

    quota_model: Any  # NetAppQuotaModel

    def create_quota_model(self) -> Any:
        opts = self.options
        self.client = OntapClient(
            opts["endpoint"],
            opts["user"],
            opts["password"],
            verify_ssl=opts["verify-ssl"],
            job_timeout=opts["job-timeout"],
            poll_interval=opts["job-poll-interval"],
        )
        return NetAppQuotaModel(
            self.name,
            self.quota_scope_path,
            self.vfolder_path,
            self.deps.books,
            self.scan_usage,
            usage_ttl=float(opts["quota-usage-ttl"]),
            client=self.client,
            svm=opts["svm"],
            ontap_volume=opts["volume-name"],
        )

    @property
    def stage_beside_target(self) -> bool:
        """A rename may not leave a qtree (EXDEV): stage writes beside their target."""
        return True

    async def init(self) -> None:
        """The NFS checks, then: the ONTAP volume exists, and quotas are on (turned on if off)."""
        await super().init()
        svm, name = self.options["svm"], self.options["volume-name"]
        try:
            volume = await self.client.find_volume(svm, name)
            if volume is None:
                raise PluginError(
                    f"volume {self.name!r}: ONTAP at {self.client.endpoint} has no volume "
                    f"{name!r} on SVM {svm!r}"
                )
            self.quota_model.volume_uuid = volume["uuid"]
            await self.check_snapdir()
            if volume.get("quota", {}).get("state") != "on":
                await self.client.enable_quota(volume["uuid"])
        except OntapError as e:
            await self.client.close()
            raise PluginError(f"volume {self.name!r}: {e.detail}") from e
        except BaseException:
            await self.client.close()
            raise

    async def delete_vfolder(self, vfid: VFolderID) -> None:
        """Its ONTAP snapshots go first (they would keep its blocks with no way to reach them)."""
        if await self.vfolder_exists(vfid):
            await self.drop_snapshots(vfid)
        await super().delete_vfolder(vfid)

    async def shutdown(self) -> None:
        await self.client.close()
        await super().shutdown()

    async def get_fs_usage(self) -> FSUsage:
        space = await self.client.volume_space(self.quota_model.volume_uuid)
        return FSUsage(capacity_bytes=int(space["size"]), used_bytes=int(space["used"]))
