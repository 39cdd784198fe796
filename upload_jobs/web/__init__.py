"""The jobs web page (`upload-jobs web`): a FastAPI app, its JSON API and its static page."""
