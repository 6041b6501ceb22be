"""aiohttp applications, one per audience: manager, client (S3 view and internal come later)."""
