from service.engine.runner import _call_key, _Turn
from service.llm import ToolCallFragment


def test_fragments_join_their_call_and_a_new_id_at_the_same_index_is_a_new_call():
    turn = _Turn()
    first = _call_key(turn, ToolCallFragment(index=0, id="a", name="f", arguments=""))
    assert _call_key(turn, ToolCallFragment(index=0, arguments='{"x"')) == first
    second = _call_key(turn, ToolCallFragment(index=0, id="b", name="f", arguments="{}"))  # no index sent: 0 again
    assert second != first
    assert _call_key(turn, ToolCallFragment(index=1, name="g")) == (1, None)
