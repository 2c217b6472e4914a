"""genlab's tests: a regular package, so `tests.<helpers>` is ours even where a dependency ships a top-level
`tests` package of its own (torch-fidelity's wheel does)."""
