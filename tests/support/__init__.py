"""Test helpers shared by test modules: local S3 fault injection."""
