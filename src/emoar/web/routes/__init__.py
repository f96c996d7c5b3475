"""Route modules: ``api`` (REST), ``stream`` (websocket), ``pages`` (HTML and overlay assets)."""
