"""stilts' Hydra plugins (Hydra instantiates launchers only from the `hydra_plugins` namespace)."""
