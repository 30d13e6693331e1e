"""Method packages; each registers a MethodSpec on import (see gancore.registry)."""
