"""Whole-store work over the object graph: gc, fsck, usage, checkout, diffs."""
