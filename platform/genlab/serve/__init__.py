"""Ray Serve applications: the only package that imports `ray.serve` (search_app: text-to-image search with its
web page; media: what the server does with uploads and paths, without Ray)."""
