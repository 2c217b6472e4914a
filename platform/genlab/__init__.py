"""genlab: a distributed research platform on Ray for generative models.

Families (``genlab.autoencoders`` ...) are pure torch and never import ray; Ray lives in
``genlab.distributed`` and ``genlab.serve``.
"""

__version__ = "0.1.0"
