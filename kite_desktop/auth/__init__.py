"""Signing in to cloud accounts and keeping their tokens: OAuth flows and the token store. Qt-free."""
