"""The SQLite catalog: datasets, snapshots, tags, heads, access, tasks, caches."""
