"""Training support: distribution helpers (more to come with the trainer)."""
