"""The registered codecs, one module each (gancore.compress.registry imports them all)."""
