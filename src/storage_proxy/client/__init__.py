"""``storage-proxy-client``: upload, download and list through the client API with a user token."""
