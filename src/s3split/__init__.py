"""s3split: split huge CSV files into header-repeating chunks and process them in parallel lanes."""

__version__ = "0.1.0"
