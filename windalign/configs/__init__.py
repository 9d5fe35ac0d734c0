"""Built-in YAML configurations (package data), e.g. ``bandit.yaml`` for ``wind bandit``."""
