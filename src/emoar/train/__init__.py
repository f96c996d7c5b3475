"""Training, evaluation and export (the only subpackage that imports torch)."""
