"""What a store raises when it fails. Each backend translates its driver's exceptions into these
at its one execution choke point, so nothing above the store sees aiosqlite or cassandra-driver
types (service/errors.py maps them to gRPC statuses)."""


class StoreError(Exception):
    """The store could not do what was asked, and asking again will not help (a refused statement,
    a damaged file, a bug). The driver's exception is the __cause__."""


class StoreUnavailable(StoreError):
    """The store could not be reached, or did not answer in time, or is busy: the same request may
    succeed later. A write that timed out may or may not have been applied."""
