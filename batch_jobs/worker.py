"""The entrypoint the worker image runs: one AWS Batch array child, all of it in pdf2md.worker.

`python -m batch_jobs.worker` reads the job's environment (contracts.JobSettings) and exits with the
shard's code. The names below are re-exported for callers that still import this module.
"""

from __future__ import annotations

import logging
import os
import sys

from pdf2md.worker import EXIT_DONE, EXIT_INTERRUPTED, EXIT_SHARD_FAULT, main, run

__all__ = ["EXIT_DONE", "EXIT_INTERRUPTED", "EXIT_SHARD_FAULT", "main", "run"]

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main(dict(os.environ)))
