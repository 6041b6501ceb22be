"""Fixtures shared by every suite."""

pytest_plugins = [
    "api_fixtures",
    "daemon_fixtures",
    "etcd_fixtures",
    "redis_fixtures",
    "webhook_fixtures",
]
