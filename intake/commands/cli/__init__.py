"""The `chikanemail` command line: one module per command group, loaded only when it runs."""
