"""The error type for user mistakes, and the one check every stage may need, in a module of its own so that lean
worker processes can raise it."""


class UserError(Exception):
    """A mistake in the user's input or config: reported as one line, never a traceback.

    One raised in a DataLoader worker comes back through torch as "Caught UserError in DataLoader worker process N.",
    the worker's traceback, and "vidssl.core.errors.UserError: <message>": it keeps only its message.
    """

    def __init__(self, message: str = ""):
        if message.startswith("Caught ") and " in DataLoader worker process " in message.split("\n", 1)[0]:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


def check_multiple(key: str, value: int, batch: int) -> None:
    """A size that holds whole global batches (MoCo's queue: each step enqueues a whole batch of keys)."""
    if value % batch:
        raise UserError(f"config {key} ({value}) must be a multiple of train.batch_size ({batch}): "
                        f"{key} {value} leaves {value % batch} slots over")
