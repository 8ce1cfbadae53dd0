"""The config layer: typed schemas of every group (schema), the group entries (groups), cached composes (compose), and
the error a user can fix (errors). It imports nothing above it: the checks that need the algorithm registry, the
trainers' batch plans or the benchmarks' sources live in harness.checks."""
