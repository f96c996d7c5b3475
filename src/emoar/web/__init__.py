"""The web app: REST API, live websocket, and the browser pages (``emoar serve``).

Importing this package does no work; build the app with :func:`emoar.web.app.create_app`
(models load when the server starts) and configure it with :class:`emoar.web.settings.Settings`.
"""
