"""Human review: agreement policy, the operations the CLI and the web app share, the web app,
agreement statistics and Label Studio exchange; the seed queue (seeds from public sources,
curated under the same rules) and its pages."""
