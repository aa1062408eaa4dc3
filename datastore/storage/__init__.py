"""Bytes on disk: content-addressed objects, Parquet range manifests, locks."""
