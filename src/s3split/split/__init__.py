"""The split: CSV bytes into header-repeating chunk files, on one machine or in Lambda."""
