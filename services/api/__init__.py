"""The REST API for the browser SPA and operators."""
