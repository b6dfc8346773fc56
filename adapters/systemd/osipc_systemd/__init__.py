"""systemd integration (placeholder)."""
