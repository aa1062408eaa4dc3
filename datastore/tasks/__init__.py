"""Background processing and validation of dataset files."""
