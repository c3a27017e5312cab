"""The AWS Batch array child: take a shard of the manifest, convert it, record what happened."""
