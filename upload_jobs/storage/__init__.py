"""The bucket: uploads, checks and aborts on Spaces (`spaces`), shared boto3 clients (`clients`),
boto3 failures as domain errors (`failures`), object keys (`object_keys`), file sha256s
(`checksums`), multipart bodies read from the file (`file_spans`), the local S3 server
(`local_s3`)."""
