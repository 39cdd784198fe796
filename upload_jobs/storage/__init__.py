"""The bucket: uploads, checks and aborts on Spaces (`spaces`), what a key holds (`objects`) and
writes only while it holds it (`conditions`), shared boto3 clients (`clients`), boto3 failures as
domain errors (`failures`), object keys (`object_keys`), file sha256s (`checksums`), what an
upload sends, read straight from the source (`upload_body`), multipart uploads a later try
resumes (`resume`), what an endpoint supports (`endpoint_probes`), the local S3 server
(`local_s3`)."""
