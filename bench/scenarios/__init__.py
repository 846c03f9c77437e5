"""One module per benchmark scenario; each has `run(bench) -> list[Row]`."""
