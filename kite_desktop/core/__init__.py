"""Qt-free domain: models, errors, catalog, settings, transfer queue, and the service facade."""
