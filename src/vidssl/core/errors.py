"""The error type for user mistakes, and the one check every stage may need, in a module of its own so that lean
worker processes can raise it."""


class UserError(Exception):
    """A mistake in the user's input or config: reported as one line, never a traceback."""


def check_multiple(key: str, value: int, batch: int) -> None:
    """A size that holds whole global batches (MoCo's queue: each step enqueues a whole batch of keys)."""
    if value % batch:
        raise UserError(f"config {key} ({value}) must be a multiple of train.batch_size ({batch}): "
                        f"{key} {value} leaves {value % batch} slots over")
