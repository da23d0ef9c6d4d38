"""Segments over time: snapshots, migration between them, holdout groups and test analysis."""
