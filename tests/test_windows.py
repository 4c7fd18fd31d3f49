"""routeviz/windows.py: a text longer than the context is cut into consecutive windows."""

from routeviz.runs.inputs import Item
from routeviz.runs.windows import text_windows
from tests.app_toys import ToyTextRunner


def n_tokens(runner, text):
    return len(runner.encode([Item(text=text)]).tokens[0])


def test_a_text_that_fits_is_returned_as_it_is():
    runner = ToyTextRunner(max_tokens=8)
    item = Item(text="one two three", source="a.txt")
    assert text_windows(runner, item) == [item]


def test_windows_join_back_to_the_text_and_each_fits():
    runner = ToyTextRunner(max_tokens=8)
    words = [f"w{i}" for i in range(40)]
    text = " ".join(words) + "\n"
    windows = text_windows(runner, Item(text=text, source="long.txt", tags={"lang": "en"}))
    assert len(windows) > 1
    assert "".join(w.text for w in windows) == text
    assert all(n_tokens(runner, w.text) < runner.max_tokens for w in windows)
    # as long as they can be: the next word would not have fitted
    assert all(n_tokens(runner, w.text) == runner.max_tokens - 1 for w in windows[:-1])
    starts = [0]
    for w in windows[:-1]:
        starts.append(starts[-1] + len(w.text))
    assert [w.tags for w in windows] == [
        {"lang": "en", "window": str(i), "char_start": str(a)} for i, a in enumerate(starts)]
    assert windows[0].source == f"long.txt [window 1/{len(windows)}]"
