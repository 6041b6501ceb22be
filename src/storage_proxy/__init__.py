"""storage-proxy: an asyncio daemon between storage volumes and the people who use them."""

__version__ = "0.1.0"
