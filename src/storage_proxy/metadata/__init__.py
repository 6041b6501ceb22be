"""The metadata store: quota limits and the vfolder registry (SQLite by default)."""
