"""Test guest in Python: sends the HTTP requests its caller asks for with the SDK's
``request`` and answers each with one text message.

  get <url> [leg=<leg>]     -> ``status=<n> body=<text>`` or ``error=<why>``
  post <url> <body>         -> the same, the body sent as text
"""

from wit_world import exports
from wit_world.imports import websocket as ws

import switchboard_guest as sb


class Handler(exports.Handler):
    def handle(self, request, inbound):
        while True:
            message = sb.receive_blocking(inbound)
            if isinstance(message, sb.Closed):
                return
            if isinstance(message, ws.Message_Text):
                sb.send_blocking(inbound, sb.text(answer(message.value)))


def answer(command):
    verb, url, *rest = command.split(" ")
    leg = next((word[4:] for word in rest if word.startswith("leg=")), None)
    try:
        if verb == "post":
            response = sb.request(url, body=" ".join(rest), headers=[("content-type", "text/plain")])
        else:
            response = sb.request(url, headers=[("authorization", "Bearer guessed")], leg=leg)
        return f"status={response.status} body={response.text()}"
    except sb.HttpError as error:
        return f"error={type(error.code).__name__.removeprefix('ErrorCode_')}"
