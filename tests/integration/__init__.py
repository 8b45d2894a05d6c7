"""Integration tests: the engine, moto servers and DynamoDB."""
