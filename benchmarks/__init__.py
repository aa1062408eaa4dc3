"""Reproducible workloads and a runner (``python -m benchmarks``) that prints a table.

Every benchmark module exposes ``run(quick: bool) -> list[dict]`` returning rows
``{workload, tool, metric, value, unit}``; the runner collects them, prints one table and
with ``--json PATH`` writes the rows.
"""
