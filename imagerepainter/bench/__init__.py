"""The Image Regeneration benchmark: rank text-to-image models by how closely they regenerate references."""
