"""The one exception type that reaches the user as a plain message instead of a traceback."""


class StiltsError(Exception):
    """Bad input or an impossible config: the message names the file/key and what to do."""


class DivergedError(StiltsError):
    """Training produced a non-finite loss or weights: the stage must not be exported."""


class DataMissing(StiltsError):
    """A file (or Hub source) a run needs does not exist where stilts looks for it."""


class DataMalformed(StiltsError):
    """Data exists but does not have the format or schema stilts reads."""


class HubUnreachable(StiltsError):
    """A Hugging Face Hub dataset could not be loaded (offline, gated, moved)."""
