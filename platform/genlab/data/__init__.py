"""Datasets with offline paths, and parquet shards that Ray Data reads."""

from genlab.data.mnist import DatasetUnavailable, holdout_split, load_dataset
from genlab.data.shards import ensure_shards, read_shards

__all__ = ["DatasetUnavailable", "holdout_split", "load_dataset", "ensure_shards", "read_shards"]
