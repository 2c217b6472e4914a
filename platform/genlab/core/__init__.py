"""Shared plumbing: configs, seeding, runtimes, run directories, checkpoints, plotting."""
