"""Command implementations; ``cli.py`` only parses flags and calls these."""
