"""Everything that talks to the outside: Postgres (event store, embedded server), venues."""
