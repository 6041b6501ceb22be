"""The bottom layer every other one may import: domain errors, identifiers and value types,
records, relative paths and units.  It imports nothing of the project."""
