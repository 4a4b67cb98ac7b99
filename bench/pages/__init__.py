"""A model of the bench's own: a plain FileField on S3StrataStorage, as a Django project without PhysicalFileField has it."""
