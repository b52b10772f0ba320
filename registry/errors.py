"""Registry errors; their messages are shown to users as they are (the server's 404 detail)."""


class UnknownDatasetError(LookupError):
    """No dataset is registered under the asked (short_name, derived_scalar_type)."""


class UnknownModelError(LookupError):
    """No model is registered under the asked short name."""


class RegistryConflictError(ValueError):
    """A key is registered again with different content."""


class UnsupportedPathError(ValueError):
    """A path's scheme is not one the storage layer can read."""
