"""Local execution engine: run the pipeline's state machine on moto's ASL interpreter."""
