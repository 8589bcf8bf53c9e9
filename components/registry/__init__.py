"""Registry stages: select and gate the challenger, then bundle, log and register it."""
