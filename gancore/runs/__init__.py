"""The training stages' runs, one module each, above the lifecycle they share
(gancore/runtime.py `run_training`): what a stage script calls once it parsed its arguments and
loaded its declared params."""
