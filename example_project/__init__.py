"""The example site of django-s3strata."""
