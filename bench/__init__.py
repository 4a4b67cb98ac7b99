"""Benchmarks of django-s3strata against raw boto3 and django-storages on one local S3 server."""
