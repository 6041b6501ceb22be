"""Shared state for several proxy nodes: etcd-backed configuration, node registry, metadata.

Key layout (all under ``<[etcd] prefix>/<[etcd] namespace>/``, default ``/storage-proxy/local/``):

- ``config/<section>/<key>/...``: global configuration, one JSON value per key; a JSON object is
  deep-merged at its path (``config/volume/shared = {"backend": "vfs", "path": "/srv/shared"}``).
  Only the shared keys in ``shared_config.SHARED_KEYS`` are taken; node-local keys (listen
  addresses, data-dir, node-id, …) always come from the local file.
- ``nodes/<node-id>``: one JSON document per live node, attached to the node's lease.
- ``meta/...``: the metadata store when ``[metadata] backend = "etcd"`` (see ``metadata/etcd.py``).
"""
