"""Image ingest, the built-in demo set and webdataset shards; after stylegan2-ada's dataset_tool."""
