"""The recipe: the pydantic model of a YAML recipe, its `train` and `mode` sections, `--set`
overrides and the one-line error messages. Each lower layer owns the schema of its own section
(`data.config.DataConfig`, `models.config.StudentConfig`); the recipe assembles them and checks
names against their registries (tasks, objectives, modes). May import objectives, models, data,
runtime and errors."""
