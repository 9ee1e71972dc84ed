"""Schemathesis hooks for liteshop's API (loaded through SCHEMATHESIS_HOOKS).

A key is one request per user: the server refuses (422) a key it has seen
with another body, and that refusal is tested on purpose in
server/tests/contract.rs. Schemathesis draws Idempotency-Key values from
the header's pattern and can draw one UUID twice for two different bodies,
then counts the documented 422 as a valid request rejected. So every
request that carries a *valid* key gets a fresh one, just before it is
sent; invalid keys (negative tests) are left as drawn, so their 400 is
still checked.

Schemathesis also models an empty header as an absent one (its coverage
phase sends `Idempotency-Key: ` for "no key" and expects it accepted).
liteshop refuses an empty key on purpose — a client whose key variable is
empty must not double-charge on a retry — and server/tests/contract.rs
tests that. So an empty key is removed before sending: the request then
is what schemathesis believes it sends.

Negative cases are left untouched: whatever key they carry, the server
must refuse them anyway, and editing their headers would make
schemathesis revalidate the case and send headers it meant to leave out.
"""

import re
import uuid

import schemathesis

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    meta = getattr(case, "meta", None)
    if meta is not None and meta.generation.mode.is_negative:
        return
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() != "idempotency-key" or not isinstance(headers[name], str):
            continue
        if headers[name] == "":
            del headers[name]
        elif UUID.fullmatch(headers[name]):
            headers[name] = str(uuid.uuid4())
