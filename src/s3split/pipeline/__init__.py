"""The state machine's steps, run by the Lambda functions (functions/*/app.py): plan, split,
lanes, one chunk, report; and what a run keeps under its location."""
