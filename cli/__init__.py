"""Command-line programs `strokedata` and `strokebench`: parse, call the library, render. No logic."""
