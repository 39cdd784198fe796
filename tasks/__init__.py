"""Prefect tasks: thin wrappers adding names and retries around `upload_jobs`.

No task carries tags: in Prefect 3.8.8 every tagged task run asks the server for tag
concurrency slots before it starts, measured at 1-2.6 s per task run even with no limit
defined (a whole flow run went from 1.1 s to 7-12 s). Limits on ffmpeg and upload slots
belong in explicit global concurrency limits instead.
"""
