"""The config layer: typed schemas of every group (schema), combinations checked before a run starts (checks), and
the error a user can fix (errors)."""
