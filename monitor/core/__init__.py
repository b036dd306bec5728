"""Pure logic: no I/O, no clock reads (time is passed in), only `monitor.model` values."""
