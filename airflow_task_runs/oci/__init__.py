"""Oracle OCI AI Data Platform: signed sessions, task run and MLflow run sensors, task run outputs."""
