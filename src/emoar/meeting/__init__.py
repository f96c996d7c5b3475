"""Meeting mode: participants share a live emoji of their own expression, never their camera.

The participant's device infers the expression; only labels, probabilities and "face found"
travel (:mod:`emoar.meeting.protocol`). Rooms, tokens and visibility: :mod:`emoar.meeting.rooms`;
persistence: :mod:`emoar.meeting.store`. The web routes live in :mod:`emoar.web.routes.rooms`.
"""
