"""Byte I/O, below everything that reads records: local, HTTP, cloud and Hub files (storage,
remote, hub) over one HTTP client (http_client), ranged reads of Parquet parts, the disk byte
cache, an LRU, and the errors every reader raises."""
