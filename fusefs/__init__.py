"""The pyfuse3 + trio adapter: POSIX operations on the mount -> store calls."""
