"""The inference node benchmark (`make bench-serve`)."""
