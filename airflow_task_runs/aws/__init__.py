"""AWS HealthOmics: run and run-task sensors, task details, task logs and run outputs (on the amazon provider)."""
