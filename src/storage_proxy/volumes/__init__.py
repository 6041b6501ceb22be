"""The volume interface, its POSIX base, the backend registry and the tree scanner."""
