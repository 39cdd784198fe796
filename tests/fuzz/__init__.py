"""Fuzzing the parsers of untrusted video bytes: the top-level box walk, the `moov` parser, the
in-process move's planner and the startup measurement, over structure-aware mutations of clips
made by ffmpeg. `test_fuzz.py` runs a bounded number of examples with hypothesis in the suite;
`python -m tests.fuzz TARGET` runs atheris, coverage-guided, for as long as you like."""
