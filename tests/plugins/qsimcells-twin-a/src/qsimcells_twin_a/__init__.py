"""Test plugin: registers the circuit sampler name "twin", as its sibling distribution does."""
