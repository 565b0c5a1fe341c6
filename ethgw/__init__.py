"""ethgw launcher: the `ethgw` command, the toolchain paths and the local stack supervisor."""
