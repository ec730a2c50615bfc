"""Domain services. Each takes ``session`` and ``now`` (and an ``actor`` where it changes data),
only flushes, and never reads ``request``, ``g`` or the Flask session: the web, the CLI and the
scheduler call the same code."""
