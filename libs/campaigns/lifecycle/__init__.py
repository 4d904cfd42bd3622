"""The call lifecycle: every transition of a call and its job, in one package.

``table`` says which moves exist; ``statements`` holds the SQL that makes them; ``status``
applies a provider status; ``dialing`` claims free slots; ``inbound`` opens and closes inbound
call logs; ``conditions`` defines "due", "stuck" and "needs a lead" once for producers and the
reconciler alike; ``followups`` builds the messages a transition implies, sent after commit by
``libs.queueops.outbox``. Nothing outside this package writes ``calls.status`` or
``call_jobs.status`` (tests/support/status_guard.py checks it in every test).

The models do not import this package (it imports them; import-linter forbids the cycle): the
statuses, ranks and job-status groups are read from ``table``, not from ``libs.common.models``.
"""
