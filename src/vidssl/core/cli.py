"""Run a stage function from a Snakemake script: log to the rule's log, user mistakes as one line."""
from __future__ import annotations

import sys
import time
from typing import Callable

from vidssl.core.errors import UserError
from vidssl.core.io import rule_logger


def run_stage(smk, stage: Callable, *, job: str | None = None) -> None:
    """Call `stage(log)` with the rule's logger; a UserError ends the job with one clear line, not a traceback, that
    names the rule (or `job`, where one rule runs several kinds of job)."""
    job = job or smk.rule
    log = rule_logger(smk.log[0] if smk.log else None, name=job)
    if "torch" in sys.modules:  # torch's default of every core oversubscribes jobs that Snakemake runs side by side
        sys.modules["torch"].set_num_threads(max(1, smk.threads))
    console = sys.__stderr__
    started = time.perf_counter()
    try:
        stage(log)
        log.info("%s done in %.1f s", job, time.perf_counter() - started)
    except UserError as error:
        log.error("%s", error)
        print(f"vidssl {job}: {error}", file=console)
        sys.exit(1)


def paths(value) -> list[str]:
    """A named input or output as a list: Snakemake gives a str for one file and a list-like for several."""
    return [value] if isinstance(value, str) else list(value)
