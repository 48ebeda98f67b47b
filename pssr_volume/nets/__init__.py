"""Super-resolution networks: one module per architecture, found by name in the registry."""
