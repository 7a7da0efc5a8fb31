"""What a build is given, validated: settings and their sections, the taxonomy, seeds, the
(seed, relation) pairs, user data files, YAML with line numbers, input limits, the cache folder."""
