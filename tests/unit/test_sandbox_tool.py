"""The python tool's arguments: the code read out of JSON still being streamed, and of whole calls."""

import json

from service.sandbox.tool import code_of, partial_code

CODE = 'import pandas as pd\nprint(pd.read_csv("a.csv")["x"].sum())  # é 😀 \\ \t "quoted"'


def test_the_code_streams_out_of_any_cut_of_the_arguments_and_only_grows():
    for arguments in (json.dumps({"code": CODE}), json.dumps({"code": CODE}, ensure_ascii=False)):
        shown = ""
        for end in range(len(arguments) + 1):
            now = partial_code(arguments[:end])
            assert now.startswith(shown)  # an escape cut in half is never shown half-decoded
            shown = now
        assert shown == CODE


def test_whole_arguments_and_bare_code():
    assert code_of(json.dumps({"code": CODE})) == CODE
    assert code_of("print(1)") == "print(1)"  # a model that sent the code itself
    assert code_of(json.dumps({"other": 1})) == ""
    assert partial_code('{"language": "python", "code": "x = ') == "x = "
    assert partial_code('{"code": 12') == ""
