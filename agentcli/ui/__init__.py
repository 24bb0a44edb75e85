"""Terminal UI: rich rendering on stderr, approval prompts. The core never imports this."""
