"""The stage layer: what each DVC stage script (stages/) runs once it parsed its arguments and
loaded its declared params, one module per kind of stage, above the lifecycle they share
(gancore/stage/runtime.py: exit codes, threads, the MLflow run's one owner, `run_training`)."""
