"""The inbox: files dropped in a directory become dataset files and snapshots."""
