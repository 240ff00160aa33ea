"""strokemodels: the model zoo and the benchmark of strokebench. Imports strokedata, never the reverse."""
