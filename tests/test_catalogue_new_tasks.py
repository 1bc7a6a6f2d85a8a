"""The seeds' catalogue, complete: urial(), chat_generation(), a row-level system_prompt,
multimodal content parts, and task.print()."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest

from distilfn import tasks as T
from distilfn.chat import check_chat, image_message
from distilfn.models.openai import openai_compatible
from distilfn.testing import scripted_model
from distilfn.testing.fakeserver import FakeServer

CHAT = [
    {"role": "user", "content": "Name a yellow fruit."},
    {"role": "assistant", "content": "A banana."},
    {"role": "user", "content": "And a red one?"},
]
URIAL_HEAD = "# Instruction\n\nBelow is a list of conversations between a human and an AI assistant (you)."


def test_urial_renders_the_seeds_prompt_for_an_instruction():
    (message,) = T.urial().chat_for({"instruction": "<PLACEHOLDER_INSTRUCTION>"})
    assert message["role"] == "user"
    assert message["content"].startswith(URIAL_HEAD)
    assert message["content"].endswith("# User:\n\n<PLACEHOLDER_INSTRUCTION>\n\n# Assistant:")


def test_urial_renders_a_conversation_turn_by_turn_and_cuts_the_next_user_turn():
    t = T.urial(conversation=True)
    content = t.chat_for({"conversation": CHAT})[0]["content"]
    assert content.index("# User:\n\nName a yellow fruit.") < content.index("# Assistant:\n\nA banana.") < content.index("# User:\n\nAnd a red one?")
    out = t.run(pl.DataFrame({"conversation": [CHAT]}), model=scripted_model(["A strawberry.\n\n# User:\nThanks!"]), cache=False)
    assert out["generation"].to_list() == ["A strawberry."]


def test_urial_refuses_a_conversation_that_does_not_end_with_the_user():
    out = T.urial(conversation=True).run(pl.DataFrame({"conversation": [CHAT[:2]]}), model=scripted_model(["x"]), cache=False, warn_failures=False)
    assert out["generation"].to_list() == [None]
    assert "must end with a user message" in out["meta.urial"].struct.field("error")[0]


def test_chat_generation_answers_the_messages_column_as_sent():
    seen = []
    model = scripted_model(lambda chat: seen.append(chat) or "A cherry.")
    out = T.chat_generation(system_prompt="Be brief.").run(pl.DataFrame({"messages": [CHAT]}), model=model, cache=False)
    assert out["generation"].to_list() == ["A cherry."]
    assert seen == [[{"role": "system", "content": "Be brief."}, *CHAT]]


def test_text_generation_honours_a_row_level_system_prompt_column():
    seen = []
    model = scripted_model(lambda chat: seen.append(chat) or "ok")
    frame = pl.DataFrame({"instruction": ["a", "b", "c"], "system_prompt": ["Be a pirate.", None, "  "]})
    T.text_generation(system_prompt="Default.").run(frame, model=model, cache=False)
    systems = {c[-1]["content"]: c[0]["content"] for c in seen}
    assert systems == {"a": "Be a pirate.", "b": "Default.", "c": "Default."}
    # without the column the task's own system prompt is used, and no column is required
    assert T.text_generation().validate(["instruction"]) is not None


def test_multimodal_parts_pass_validation_and_reach_the_server_unchanged():
    message = image_message("What is this?", "https://example.org/cat.png")
    assert check_chat([message], where="t") == [message]
    t = T.chat_generation()
    with FakeServer(reply=lambda messages, i: "A cat.") as server:
        out = t.run(pl.DataFrame({"messages": [[message]]}), model=openai_compatible(server.url, model="vision"), cache=False)
        sent = server.stats()["last_body"]["messages"]
    assert sent == [message]
    assert out["generation"].to_list() == ["A cat."]
    stored = out["meta.chat_generation"].struct.field("raw_input")[0][0]["content"]
    assert json.loads(stored) == message["content"]


@pytest.mark.parametrize(
    "part",
    [{"type": "image_url", "image_url": {}}, {"type": "text"}, {"type": "audio"}, "text"],
)
def test_a_malformed_content_part_is_one_clear_error(part):
    with pytest.raises(TypeError, match="content part 0"):
        check_chat([{"role": "user", "content": [part]}], where="task 't'")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_print_shows_a_rich_panel_on_a_terminal_and_plain_text_elsewhere():
    panel = Terminal()
    T.urial().print({"instruction": "<PLACEHOLDER_INSTRUCTION>"}, file=panel)
    shown = panel.getvalue()
    assert "Prompt: urial" in shown and "User Message" in shown and "╭" in shown
    plain = io.StringIO()
    T.urial().print({"instruction": "<PLACEHOLDER_INSTRUCTION>"}, file=plain)
    assert plain.getvalue().startswith("Prompt: urial\n\n[user]\n# Instruction") and "╭" not in plain.getvalue()


def test_tasks_whose_paper_bounds_the_answer_set_a_default_max_tokens():
    bounded = [
        (T.ultrafeedback_task(), 764), (T.ultrafeedback_task(aspect="helpfulness"), 1464), (T.judgelm(), 512),
        (T.complexity_scorer(), 256), (T.quality_scorer(), 256), (T.ultracm(), 1024), (T.ultrajudge(), 1024),
        (T.prometheus(), 1024), (T.equal_prompts_judge(), 32), (T.evol_instruct_task(), 512), (T.fresh_start(), 512),
        (T.evol_quality_task(), 1024), (T.urial(), 1024),
    ]
    for t, expected in bounded:
        assert t.defaults["max_tokens"] == expected and "max_tokens" not in t.params, t.name
    assert T.evol_instruct_task(params={"max_tokens": 64}).params["max_tokens"] == 64
    assert T.ultrafeedback_task(num_generations=2).defaults["max_tokens"] == 64 + 2 * 175
    assert "max_tokens" not in {**T.text_generation().defaults, **T.chat_generation().defaults}


def test_a_runs_max_tokens_overrides_a_tasks_default_and_the_tasks_own_overrides_both():
    """The defaults once sat in the tasks' own params, which beat a run's: `params=` and the
    CLI's --max-tokens then no longer reached the judges and rewrites."""
    import polars as pl

    from distilfn.models import openai_compatible
    from distilfn.testing.fakeserver import FakeServer

    rows = pl.DataFrame({"instruction": ["Name a fruit."]})
    sent = []
    with FakeServer(reply=lambda messages, i: "An apple.") as server:
        model = openai_compatible(server.url, model="m")
        for step, options in ((T.evol_instruct_task(), {}), (T.evol_instruct_task(), {"params": {"max_tokens": 7}}),
                              (T.evol_instruct_task(params={"max_tokens": 9}), {"params": {"max_tokens": 7}})):
            step.run(rows, model=model, cache=False, quiet=True, **options)
            sent.append(server.stats()["last_body"]["max_tokens"])
    assert sent == [512, 7, 9]


def test_ultrafeedback_plan_without_answering_only_judges_the_frames_generations():
    plan = T.ultrafeedback(generate_answers=False)
    frame = pl.DataFrame({"instruction": ["q"], "generations": [["a", "b"]]})
    answer = "#### Output for Text 1\nRating: 4\nRationale: Ok.\n#### Output for Text 2\nRating: 2\nRationale: Meh."
    out = plan.run(frame, model=scripted_model([answer]), cache=False)
    assert out["ratings"].to_list() == [[4, 2]]
    with pytest.raises(Exception, match="generations"):
        plan.compile(["instruction"])
