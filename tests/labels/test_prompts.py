import pytest

from cinefm.labels.prompts import InvalidAnswer, ask_validated, build_messages, parse_answer


def test_messages_carry_system_question_report_and_literal_json_braces(vocab):
    msgs = build_messages(vocab.prompts, vocab.diseases[0], "  LVEF 60 %. HCM.  ")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert '"""\nLVEF 60 %. HCM.\n"""' in msgs[1]["content"]
    assert vocab.diseases[0].definition in msgs[1]["content"]
    assert '{"answer": "yes"' in msgs[1]["content"] and "{report}" not in msgs[1]["content"]


@pytest.mark.parametrize("reply, value", [
    ('{"answer": "yes", "evidence": "HCM"}', 1),
    ('```json\n{"answer": "no"}\n```', 0),
    ('Sure. {"answer": "uncertain", "evidence": "cannot be excluded"} Hope this helps.', None),
])
def test_valid_replies(vocab, reply, value):
    assert parse_answer(reply, vocab.prompts).value == value


@pytest.mark.parametrize("reply, reason", [
    ("yes", "not JSON"),
    ('{"answer": "maybe"}', "schema"),
    ('{"evidence": "x"}', "schema"),
    ('["yes"]', "schema"),
])
def test_invalid_replies_name_the_reason(vocab, reply, reason):
    with pytest.raises(InvalidAnswer, match=reason):
        parse_answer(reply, vocab.prompts)


def test_invalid_reply_is_asked_again_with_a_correction_then_given_up(vocab):
    seen = []

    def complete(messages):
        seen.append(messages)
        return "I think yes" if len(seen) < 3 else '{"answer": "yes"}'

    msgs = build_messages(vocab.prompts, vocab.diseases[0], "HCM.")
    assert ask_validated(complete, msgs, vocab.prompts, max_retries=2).value == 1
    assert [len(m) for m in seen] == [2, 4, 6]
    assert seen[1][2] == {"role": "assistant", "content": "I think yes"} and "not JSON" in seen[1][3]["content"]
    seen.clear()
    answer = ask_validated(complete, msgs, vocab.prompts, max_retries=1)
    assert answer.value is None and answer.reason.startswith("invalid answer after 2 tries: not JSON")
