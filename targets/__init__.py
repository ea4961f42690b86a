"""Target profiles: data files (YAML), one per target. Shipped in the wheel as edgec.profiles."""
