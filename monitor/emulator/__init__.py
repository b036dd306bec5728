"""Emulated routers (SNMP agents, HiLink web servers) with simulated lives and fault modes.

Used by the tests, `make run`'s demo fleet and the benchmarks; never by the daemon itself.
"""
