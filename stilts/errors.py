"""The one exception type that reaches the user as a plain message instead of a traceback."""


class StiltsError(Exception):
    """Bad input or an impossible config: the message names the file/key and what to do."""


class DivergedError(StiltsError):
    """Training produced a non-finite loss or weights: the stage must not be exported."""
