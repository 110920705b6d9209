"""The capacity harness: the WAN emulated with network namespaces and tc, synthetic sites, measured runs."""
