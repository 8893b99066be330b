"""py_webauthn 3.0.1 verifying every assertion of INPUT (from
`assertd-loadgen peer-input`) in a loop on one thread, starting from the
JSON a browser posts; prints verifies/s as JSON.

Usage: python3 bench.py INPUT SECONDS
"""
import json
import sys
import time

import webauthn
from webauthn import verify_authentication_response
from webauthn.helpers import base64url_to_bytes


def main():
    items = json.load(open(sys.argv[1]))
    seconds = float(sys.argv[2])
    prepared = []
    for it in items:
        response = {
            "id": it["credential_id"],
            "rawId": it["credential_id"],
            "type": "public-key",
            "response": {
                "authenticatorData": it["authenticator_data"],
                "clientDataJSON": it["client_data_json"],
                "signature": it["signature"],
            },
            "clientExtensionResults": {},
        }
        prepared.append(
            (
                json.dumps(response),
                base64url_to_bytes(it["challenge"]),
                it["rp_id"],
                it["origin"],
                base64url_to_bytes(it["public_key_cose"]),
            )
        )

    def verify(p):
        body, challenge, rp_id, origin, key = p
        return verify_authentication_response(
            credential=body,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )

    for p in prepared:
        verify(p)  # raises if py_webauthn refuses one
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for p in prepared[:100]:
            verify(prepared[n % len(prepared)])
            n += 1
    rate = n / (time.perf_counter() - start)
    print(json.dumps({"peer": f"py_webauthn {webauthn.__version__}", "assertions": len(prepared), "verifies_per_second": rate}))


main()
