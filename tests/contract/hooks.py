"""Schemathesis hooks for the contract run (scripts/contract).

`cargo lambda watch`, the local emulator of API Gateway, cannot put a request body that is not valid UTF-8
into an event when it is sent as JSON: it answers 500 itself, before any function runs. Such bodies are
left out here. What the functions do with them is tested directly: on Lambda they arrive base64-encoded,
and shared/tests/it/handlers.rs feeds exactly that through the handlers (400 bad_request).

Likewise a header value with bytes beyond ASCII (such as an `Idempotency-Key` of Latin-1 text, which the
coverage phase sends to break its pattern): the emulator answers 500 itself. Such values are spelled out in
ASCII escapes before they are sent. The functions refuse a key beyond ASCII with a 400
(shared/tests/it/handlers.rs, `a_malformed_idempotency_key_is_400`).
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


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Spells out, in ASCII escapes, header values the emulator cannot carry (every phase calls this)."""
    for name, value in list((case.headers or {}).items()):
        if isinstance(value, str) and not value.isascii():
            case.headers[name] = value.encode("unicode_escape").decode("ascii")
