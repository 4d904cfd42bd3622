"""The outside probe: a running Switchboard stack, used from outside as an attacker and a
careless client would (issue 24), over every operation of the api's OpenAPI document and every
Twilio-facing route. ``make probe`` runs it on the embedded stack; ``python -m probe --api URL``
on a running one. Its results (``var/test-results/probe.json``) are the "probed from outside"
table of docs/reliability.md (``make probe-report``)."""
