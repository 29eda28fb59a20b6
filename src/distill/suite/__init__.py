"""`distill benchmark glue`: a teacher per GLUE task, students of several depths with several
objective sets, their retention table, averages and report; the per-task settings that
benchmarks/ scripts also use. May import modes and everything below; only the CLI imports it."""
