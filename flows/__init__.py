"""The Prefect flows; importing them (as a worker's flow run does) writes the bytecode of what
they import once (`upload_jobs.bytecode`)."""

from upload_jobs.bytecode import write_bytecode_once

write_bytecode_once()
