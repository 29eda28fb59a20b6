"""What a run leaves on disk: the run directory contract (OUT.partial/ renamed to OUT/,
distill.json, env.json, model card, the resume decision), report.md and report.html built from
one list of blocks, their figures and the deployment table. May import training (the run
directory holds its checkpoints), runtime and errors."""
