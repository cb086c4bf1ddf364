"""See ../../README.md and DESIGN.md for this layer's role."""
