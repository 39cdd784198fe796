"""Benchmarks: the project's sweep against a raw ffmpeg + boto3 baseline (`python bench/run.py`)."""
