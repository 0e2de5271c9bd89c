"""Schemathesis hooks for the contract run (scripts/contract).

`cargo lambda watch`, the local emulator of API Gateway, cannot put a request body that is not valid UTF-8
into an event when it is sent as JSON: it answers 500 itself, before any function runs. Such bodies are
left out here. What the functions do with them is tested directly: on Lambda they arrive base64-encoded,
and shared/tests/handlers.rs feeds exactly that through the handlers (400 bad_request).
"""

import schemathesis


@schemathesis.hook("filter_body")
def utf8_bodies_only(context, body):
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True
