"""The network's REST API: institutions, memberships, edge nodes, tokens, the caller.

Views are thin: they resolve public UUIDs through selectors (so a caller only
ever reaches what they may manage), call one service, and serialize the result.
"""
