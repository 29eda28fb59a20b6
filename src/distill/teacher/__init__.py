"""The teacher side of a run: the execution plan (the cheapest way to serve every
objective's access level) and the teacher cache (outputs computed once, stored under a
fingerprint, read back instead of a live teacher). May import config, objectives, models, data,
runtime and errors; not training or evaluation."""
