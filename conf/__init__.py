"""stilts.conf: the YAML configs; importing it (Hydra does, to read them) registers the settings'
schemas in Hydra's ConfigStore (stilts.settings)."""

from stilts.settings import register

register()
