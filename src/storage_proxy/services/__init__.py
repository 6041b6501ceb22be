"""Business rules between the APIs and the volumes: tokens, uploads, permissions, transfers."""
