"""The registered decoder architectures, one module each (gancore.twostage.registry imports them
all)."""
