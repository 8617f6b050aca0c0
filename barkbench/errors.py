"""The one exception the CLI turns into a plain message on stderr and an exit status."""


class BarkError(Exception):
    """A problem the user can fix. Exit status 2 for bad input, 1 for a failure while running."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code
