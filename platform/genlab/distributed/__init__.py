"""The one layer that imports ray for training: Ray Train adapter, Ray Data ingest, env defaults."""
