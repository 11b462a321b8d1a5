"""Output shaping for context windows: unit tests that bite."""

from __future__ import annotations

import pytest

from e2b_tools.tools import clean, describe_binary, is_binary, shape, utf8_prefix


def test_short_text_is_untouched() -> None:
    out = shape("hello\nworld\n", 100)
    assert out.text == "hello\nworld\n"
    assert not out.truncated


def test_head_and_tail_with_marker() -> None:
    text = "".join(f"line {i}\n" for i in range(1, 10_001))
    out = shape(text, 2000, saved_path="/home/user/.e2b-tools/outputs/run_shell-1.log")
    assert out.truncated
    assert len(out.text) <= 2000
    assert out.text.startswith("line 1\nline 2\n")
    assert out.text.endswith("line 10000\n")
    head_lines = out.text.split("\n[...")[0].count("\n")
    # The marker's numbers add up: shown + omitted = total.
    shown_tail = out.text.split("...]\n", 1)[1].count("\n")
    assert head_lines + out.omitted_lines + shown_tail == 10_000
    assert out.first_omitted_line == head_lines + 1
    assert f"offset={head_lines + 1}" in out.text
    assert "run_shell-1.log" in out.text
    assert f"{out.omitted_lines} lines" in out.text
    # Whole lines only on both sides of the cut.
    assert out.text.split("[...")[0].endswith("line 1\n") is False
    assert out.text.split("[...")[0].endswith("\n")  # the head ends on a whole line
    assert out.text.split("...]\n", 1)[1].startswith("line ")


def test_multibyte_character_exactly_at_the_cut() -> None:
    # A 4-byte emoji straddles every possible cut position near the head's end.
    for pad in range(4):
        text = "a" * (1000 + pad) + "🐍" * 3000
        out = shape(text, 1500)
        out.text.encode("utf-8")  # no lone surrogates, no broken characters
        assert "\ufffd" not in out.text
        assert out.truncated
    raw = ("x" * 9 + "é").encode() * 10  # é is 2 bytes
    for limit in range(1, len(raw)):
        cut = utf8_prefix(raw, limit)
        assert len(cut) <= limit
        cut.decode("utf-8")  # never ends inside a character


def test_a_line_longer_than_the_budget() -> None:
    text = "start:" + "z" * 100_000 + ":end"
    out = shape(text, 1000)
    assert out.truncated
    assert len(out.text) <= 1000
    assert out.text.startswith("start:")
    assert out.text.endswith(":end")
    assert out.omitted_lines == 0
    assert out.omitted_bytes > 98_000


def test_fifty_megabytes() -> None:
    text = ("0123456789" * 10 + "\n") * 500_000  # 50.5 MB
    out = shape(text, 8000, saved_path="/home/user/out.log")
    assert len(out.text) <= 8000
    assert out.omitted_lines > 490_000
    assert out.omitted_bytes > 50_000_000


def test_totals_from_the_saved_file_win() -> None:
    partial = "".join(f"{i}\n" for i in range(3000))
    out = shape(partial, 1000, total_lines=1_000_000, total_bytes=7_000_000)
    assert out.omitted_lines > 990_000
    assert out.omitted_bytes > 6_900_000


def test_ansi_and_carriage_returns() -> None:
    raw = "\x1b[31mred\x1b[0m text\nprogress 10%\rprogress 50%\rprogress 100%\ndone\r\n"
    assert clean(raw) == "red text\nprogress 100%\ndone\n"
    assert clean("\x1b]0;title\x07ok\x00\x07") == "ok"


def test_binary_bytes_are_summarised() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    assert is_binary(png)
    assert "PNG image" in describe_binary(png)
    assert "2.5 KiB" in describe_binary(png)
    assert is_binary(b"\xff\xfe\xfd" * 100)
    assert not is_binary("plain text ✓".encode())
    # A multibyte character cut by the sampling window is still text.
    assert not is_binary(("é" * 4096 + "🐍").encode()[:8193])
    assert "starts with 00 01 02" in describe_binary(bytes(range(32)))


def test_binary_output_decoded_as_text_is_summarised() -> None:
    decoded = bytes(range(256)).decode("utf-8", "replace") * 40  # what the agent sends
    out = shape(decoded, 2000, saved_path="/home/user/x.log")
    assert out.text.startswith("[binary output, ")
    assert "/home/user/x.log" in out.text
    assert len(out.text) < 300
    # Text with the odd accent or emoji is not binary, nor is heavily coloured text.
    assert not shape("naïve café ✓ 🐍\n" * 100, 5000).truncated
    coloured = "\x1b[1;34mdir\x1b[0m \x1b[32mfile\x1b[0m\n" * 200
    assert shape(coloured, 50_000).text == "dir file\n" * 200


@pytest.mark.parametrize("budget", [500, 2000, 8000])
def test_budget_is_respected(budget: int) -> None:
    text = "\n".join("word " * (i % 50) for i in range(5000))
    assert len(shape(text, budget).text) <= budget


def test_the_marker_names_the_reader_tool() -> None:
    text = "\n".join(str(i) for i in range(5000))
    default = shape(text, 1000, saved_path="/w/out.log").text
    assert "read_file(path='/w/out.log', offset=" in default
    named = shape(text, 1000, saved_path="/w/out.log", reader="sbx_read_file").text
    assert "read the rest with sbx_read_file(path='/w/out.log', offset=" in named
