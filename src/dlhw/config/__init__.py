"""The configuration: compose, resolvers, validation, compatibility, the config tree, the flattening for HPARAMS."""
