"""The one training loop and what it is made of: learners and their loss terms, a step
over micro-batches (several processes through accelerate), the optimizer and schedule state,
atomic checkpoints of each phase, TensorBoard scalars. May import objectives, models, data,
runtime and errors; it knows nothing of recipes, modes, caches or reports."""
