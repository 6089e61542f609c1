"""Rule libraries that run after the model (medspaCy)."""
