"""Tools: the model of a tool, the registry, plugin loading and built-ins."""
