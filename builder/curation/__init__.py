"""Seed curation, the method's first stage: public datasets in, a curated, balanced, licensed seed
set out. Sources are data (`taxonomy/sources/*.yaml`); the steps are modules: `sources` (read a
source), `importer` (normalise and store with provenance), `merge` (near-duplicates across
sources), `triage` (label mapping and an LLM opinion), `curate` (the human seed queue) and
`select` (a versioned, stratified seed set)."""
