"""Examples and batches: the task registry (GLUE tasks, custom tasks), the `data` section of
a recipe, loading a task's rows from a GLUE directory, the hub, a saved dataset or files, and
tokenised, length-grouped batching. May import runtime and errors only."""
