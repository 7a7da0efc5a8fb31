"""Seed curation, the method's first stage: public datasets in, a curated, balanced, licensed seed
set out. Sources are data (`taxonomy/sources/*.yaml`); the steps are modules: `sources` (read a
source), `importer` (normalise and store with provenance), `merge` (near-duplicates across
sources), `triage` (label mapping and an LLM opinion) and `select` (a versioned, stratified seed
set). People curate seeds in the review's seed queue (`builder.review.seed_queue`, under the
review's rules); the store keeps the seeds (`builder.store.seeds`)."""
