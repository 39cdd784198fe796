"""Prefect tasks: thin wrappers adding names and retries around `upload_jobs`.

No task carries tags: every tagged task run asks the server for tag concurrency slots before
it starts, even with no limit defined (only a 5 s cache in between). Measured at 1-2.6 s per
task run with Prefect 3.8.8 (a whole flow run went from 1.1 s to 7-12 s), and again at
1.8-2.5 s with 3.9.1, whose task engine does the same. Limits on ffmpeg and upload slots belong
in explicit global concurrency limits instead.
"""

from tasks.credentials_block import read_blocks_from_prefect

# Every flow's S3 clients may read their key from a block (UPLOAD_JOBS_AWS_CREDENTIALS_BLOCK).
read_blocks_from_prefect()
