"""Small helpers shared by every part of gancore: atomic file writes, hashing, seeding."""
