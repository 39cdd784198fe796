"""The bucket: uploads, checks and aborts on Spaces (`spaces`), shared boto3 clients (`clients`),
boto3 failures as domain errors (`failures`), object keys (`object_keys`), file sha256s
(`checksums`), what an upload sends, read straight from the source (`upload_body`), multipart
uploads a later try resumes (`resume`), the local S3 server (`local_s3`)."""
