"""Loading, chunking and the ingestion pipeline."""
