"""Property-based: signed status callbacks with any parameters get 204 or 400, never a 5xx."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.calls.conftest import Post

STATUS_KEYS = ["CallSid", "CallStatus", "CallDuration", "AnsweredBy", "ErrorCode",
               "ErrorMessage", "SequenceNumber", "From", "To", "Direction"]  # fmt: skip
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["completed", "ringing", "busy", "in-progress", "human", "-1", "99999999999"]),
    st.just("CA" + "0" * 32),
)


QUERIES = ["", "job=1&attempt=1", "job=x", "attempt=-1", "job=99999999999"]
CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


# The fixture's app and database are shared by the examples: each is a new callback to it.
@settings(max_examples=150, deadline=None, suppress_health_check=CHECKS)
@given(params=st.dictionaries(st.sampled_from(STATUS_KEYS), VALUES, max_size=8),
       query=st.sampled_from(QUERIES))  # fmt: skip
def test_signed_status_callbacks_never_5xx(post_status: Post, params: dict[str, str],
                                           query: str) -> None:  # fmt: skip
    params = {k: v.replace("\x00", "") for k, v in params.items()}
    response = post_status(params, query=query)
    assert response.status_code in (204, 400), (response.status_code, response.get_data())
