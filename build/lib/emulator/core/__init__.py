"""Provider-neutral mechanics: auth, rate limits, clock, presigning, validation, storage, state.

Nothing in this package names a provider; a provider module plugs in its envelope, ids, keys and handlers.
"""
