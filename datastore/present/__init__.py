"""How the store is shown: the path namespace, the ds:// filesystem, JSON shapes."""
