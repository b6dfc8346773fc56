"""The osipc-systemd command (placeholder)."""


def main() -> int:
    return 0
