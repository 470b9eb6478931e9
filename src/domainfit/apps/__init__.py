"""Industry applications built only from domainfit's public parts (see each app's docs)."""
