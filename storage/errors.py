"""Storage failures worth a clear sentence rather than a traceback."""


class StorageError(Exception):
    """The database cannot be opened, migrated or reached; the message says why."""
