"""I/O adapters that turn a router's management interface into `Sample`s.

One module per interface (`snmp`, `hilink`), each behind the `Collector` protocol in `base`.
Collectors never touch the database and never write to a router.
"""
