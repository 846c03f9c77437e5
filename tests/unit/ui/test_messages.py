"""Errors from license servers in plain words, checked against real answers over loopback HTTP;
pool quantity problems at their edges."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.flexnet.conftest import SMALL_FIXTURE
from vlm.flexnet import FlexNetClient
from vlm.flexnet.emulator import RunningEmulator, start_emulator
from vlm.flexnet.errors import FlexNetError
from vlm.sync.clients import ServerConfigError
from vlm.ui.messages import (
    FeatureBounds,
    explain_server_error,
    quantity_problem,
    quantity_problems,
)

CLASS_NAMES = ("TransientError", "AuthenticationError", "NotFoundError", "Errno", "HTTP 40")


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with start_emulator(SMALL_FIXTURE, admin_password="admin") as running:
        yield running


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raised(base_url: str, **kwargs) -> FlexNetError:
    """What the client raises reading the feature list with these settings."""
    with (
        FlexNetClient(base_url, retries=0, timeout=5, **kwargs) as client,
        pytest.raises(FlexNetError) as caught,
    ):
        client.feature_totals()
    return caught.value


def plain(text: str) -> bool:
    return not any(name in text for name in CLASS_NAMES)


def test_an_unreachable_server_names_the_server_its_address_and_the_reason():
    url = f"http://127.0.0.1:{closed_port()}"
    error = raised(url, username="admin", password="admin")
    explained = explain_server_error(error, server="lls-east")
    assert explained.text == f"Could not reach lls-east at {url}: connection refused."
    assert explained.detail.startswith("TransientError: ") and "Errno" in explained.detail


def test_the_stored_text_of_an_error_reads_like_the_error(emulator):
    """A connection check and a sync store the error as text; the text explains the same."""
    error = raised(emulator.url, username="admin", password="wrong")
    as_text = f"{type(error).__name__}: {error.message}"
    assert explain_server_error(as_text).text == explain_server_error(error).text
    assert explain_server_error(str(error)).text == explain_server_error(error).text


def test_a_wrong_password_is_said_plainly(emulator):
    error = raised(emulator.url, username="admin", password="wrong")
    explained = explain_server_error(error)
    assert explained.text == "The license server refused the user name or password."
    assert "AuthenticationError" in explained.detail


def test_a_user_without_the_role_is_told_so(emulator):
    error = raised(emulator.url, username="nobody", password="nobody")
    text = explain_server_error(error, server="lls-east").text
    assert "lls-east" in text and "role" in text and plain(text), text


def test_a_wrong_instance_points_at_the_base_url_and_instance(emulator):
    error = raised(emulator.url, instance="NOSUCHINSTANCE", username="admin", password="admin")
    text = explain_server_error(error).text
    assert "check the base URL and the instance" in text and plain(text), text
    assert "NOSUCHINSTANCE" in text  # the server's own words name what is wrong


def test_a_failed_connection_check_message_is_explained_with_the_message_as_detail():
    url = f"http://127.0.0.1:{closed_port()}"
    message = f"TransientError: GET {url}/api/1.0/instances/~/health failed: [Errno 111] x"
    failed = explain_server_error(message, server="lls-west")
    assert failed.text == f"Could not reach lls-west at {url}: connection refused."
    assert failed.detail == message


def test_a_sync_result_says_each_problem_once():
    down = "GET http://10.0.0.9:7070/api/1.0/instances/~/features failed: timed out"
    error = f"inventory: {down}; reservations: {down}"
    explained = explain_server_error(error, server="lls-west")
    assert explained.text == (
        "Could not reach lls-west at http://10.0.0.9:7070: no answer within the time limit."
    )
    assert explained.detail == error


def test_a_sync_result_keeps_the_retry_note_apart_from_the_error():
    error = (
        "reservations: GET http://10.0.0.9:7070/x failed: Connection refused; "
        "3 allocation(s) not applied yet, will be retried"
    )
    assert explain_server_error(error, server="lls-west").text == (
        "Could not reach lls-west at http://10.0.0.9:7070: connection refused. "
        "3 allocation(s) not applied yet, will be retried."
    )


def test_a_backed_off_server_says_why_it_was_not_tried():
    reason = "not attempted, the server keeps failing: server busy (HTTP 503)"
    text = explain_server_error(reason, server="lls-west").text
    assert text.startswith("Not tried now, because the license server lls-west keeps failing")
    assert "internal error (HTTP 503)" in text


def test_an_undecryptable_password_asks_for_it_again():
    error = ServerConfigError(
        "license server 'lls-east': stored password cannot be decrypted with this key"
    )
    explained = explain_server_error(error, server="lls-east")
    assert "enter the password again" in explained.text
    assert explained.detail.startswith("ServerConfigError: ")


def test_a_url_password_never_reaches_text_or_detail():
    error = "GET http://admin:s3cret@10.0.0.9:7070/api/1.0/health failed: Connection refused"
    explained = explain_server_error(error)
    assert "s3cret" not in explained.text and "s3cret" not in (explained.detail or "")


# -- pool quantities ---------------------------------------------------------------------------

BOUNDS = FeatureBounds(minimum=2, maximum=9)


@pytest.mark.parametrize("requested", [2, 9])
def test_the_edges_of_what_a_feature_may_get_are_accepted(requested):
    assert quantity_problem("cad 1.0", requested, BOUNDS) is None


def test_one_above_what_is_available_is_over_by_one():
    assert quantity_problem("cad 1.0", 10, BOUNDS) == "cad 1.0: 10 requested, 9 available — 1 over"


def test_one_below_what_is_allocated_asks_for_at_least_that():
    assert quantity_problem("cad 1.0", 1, BOUNDS) == (
        "cad 1.0: 1 requested, but 2 are allocated — at least 2"
    )


def test_a_figure_that_moved_since_the_form_was_drawn_is_named_with_the_new_figure():
    shown = FeatureBounds(minimum=2, maximum=12)
    assert quantity_problem("cad 1.0", 12, BOUNDS, shown) == (
        "cad 1.0: 12 requested, 9 available — 3 over. Availability changed while you were "
        "editing: 9 available now (was 12)"
    )
    assert quantity_problem("cad 1.0", 9, BOUNDS, shown) is None  # still fits: no message


def test_problems_cover_only_the_features_that_do_not_fit():
    now = {("cad", "1.0"): BOUNDS, ("cae", "2.0"): FeatureBounds(0, 3)}
    problems = quantity_problems({("cad", "1.0"): 5, ("cae", "2.0"): 4, ("gone", "1"): 1}, now)
    assert problems == {
        ("cae", "2.0"): "cae 2.0: 4 requested, 3 available — 1 over",
        ("gone", "1"): "gone 1: no longer part of this VLM",
    }
