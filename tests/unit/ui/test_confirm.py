"""confirmed_action(): ask -> confirm -> attempt -> flash -> rerun, driven through AppTest."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

KEY = "delete_thing"
QUESTION_KEY = "delete_thing_3"
QUESTION = "Delete thing 3? Its 2 parts go too. This cannot be undone."


def thing_page(refuse: bool = False, enabled: bool = True, flash_text: bool = True) -> None:
    """A page with one destructive action; `calls` counts the action, `result` keeps its value."""
    import streamlit as st

    from vlm.domain import Conflict
    from vlm.ui.confirm import Question, confirmed_action
    from vlm.ui.widgets import show_flashes

    show_flashes()
    st.session_state.setdefault("calls", 0)

    def act() -> int:
        st.session_state["calls"] += 1
        if refuse:
            raise Conflict("Thing 3 is still in use.")
        return 42

    def keep(value: int) -> None:
        st.session_state["result"] = value

    confirmed_action(
        "Delete thing…",
        key="delete_thing",
        question=Question(
            "delete_thing_3",
            "Delete thing 3? Its 2 parts go too. This cannot be undone.",
            "Delete thing 3",
        ),
        act=act,
        done="Thing 3 deleted." if flash_text else keep,
        enabled=enabled,
    )


def page(**kwargs) -> AppTest:
    at = AppTest.from_function(thing_page, kwargs=kwargs, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def ask(at: AppTest) -> AppTest:
    at.button(key=KEY).click().run()
    assert not at.exception, at.exception
    return at


def keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


def test_nothing_happens_before_the_question_is_confirmed():
    at = page()
    assert keys(at) == {KEY}
    assert not at.warning
    ask(at)
    assert [w.value for w in at.warning] == [QUESTION]
    assert keys(at) == {KEY, f"{QUESTION_KEY}_confirm", f"{QUESTION_KEY}_cancel"}
    assert at.session_state["calls"] == 0


def test_confirming_acts_once_then_flashes_and_closes_the_question():
    at = ask(page())
    at.button(key=f"{QUESTION_KEY}_confirm").click().run()
    assert at.session_state["calls"] == 1
    assert [s.value for s in at.success] == ["Thing 3 deleted."]
    assert keys(at) == {KEY}  # the rerun drew the page without the question
    at.run()
    assert at.session_state["calls"] == 1
    assert not at.success  # a flash is shown once


def test_a_callable_done_gets_the_result_instead_of_a_flash():
    at = ask(page(flash_text=False))
    at.button(key=f"{QUESTION_KEY}_confirm").click().run()
    assert at.session_state["result"] == 42
    assert not at.success


def test_a_refusal_is_shown_in_place_and_nothing_is_flashed():
    at = ask(page(refuse=True))
    at.button(key=f"{QUESTION_KEY}_confirm").click().run()
    assert at.session_state["calls"] == 1
    assert [e.value for e in at.error] == ["Thing 3 is still in use."]
    assert not at.success


def test_cancel_closes_the_question_without_acting():
    at = ask(page())
    at.button(key=f"{QUESTION_KEY}_cancel").click().run()
    assert keys(at) == {KEY}
    assert not at.warning
    assert at.session_state["calls"] == 0


def test_a_destructive_action_is_red_and_so_is_its_confirm_button():
    at = ask(page())
    red = [b for b in at.button if b.key in (KEY, f"{QUESTION_KEY}_confirm")]
    assert [b.proto.type for b in red] == ["primary", "primary"]
    assert any("st-key-danger_" in h.proto.body for h in at.get("html"))


def test_a_disabled_action_greys_its_button_and_asks_nothing():
    at = page(enabled=False)
    assert at.button(key=KEY).disabled
    at.session_state[f"_confirm_{QUESTION_KEY}"] = True  # even a question left open stays shut
    at.run()
    assert keys(at) == {KEY}
    assert at.session_state["calls"] == 0
