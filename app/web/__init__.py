"""The Flask shell: the only package that imports Flask."""
