"""The error type for user mistakes, in a module of its own so that lean worker processes can raise it."""


class UserError(Exception):
    """A mistake in the user's input or config: reported as one line, never a traceback."""
