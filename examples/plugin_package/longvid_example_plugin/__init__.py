"""An example plug-in package for longvid (a template to copy into your own repository).

Each extension point is one class plus one YAML file under `configs/<group>/`; `plugins=[longvid_example_plugin]`
puts `configs/` on longvid's config search path. Importing this package runs no code of longvid's.
"""
