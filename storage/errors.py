"""Storage failures worth a clear sentence rather than a traceback."""


class StorageError(Exception):
    """The database cannot be opened, migrated or reached; the message says why."""


class AlreadyProcessed(Exception):
    """This platform event was handled before (a replay or a retry); nothing was written."""


class StorageUnavailable(StorageError):
    """The database could not be reached, even after retrying for a while."""
