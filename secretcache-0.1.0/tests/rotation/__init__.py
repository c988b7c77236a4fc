"""The rotation Lambda handler, its strategies and password generation."""
