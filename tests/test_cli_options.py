"""Error messages stay copyable: never broken inside a path, option or command."""

from __future__ import annotations

from fmnist_search.cli import format_error


def test_error_wrapping_keeps_paths_options_and_commands_whole():
    path = "/home/someone/long-project-name/fashion-mnist-data/train-images-idx3-ubyte.gz"
    message = (f"a fairly long sentence that pushes things along, the file {path} is bad; run "
               "`fmnist-search data --fetch --data-dir /tmp/x` or pass --val-fraction 0.2 "
               "with `apt-get install dataset-fashion-mnist` " + "and more words " * 8)
    text = format_error(message)
    lines = text.splitlines()
    assert len(lines) > 2 and all(len(line) <= 100 for line in lines)
    for whole in (path, "`fmnist-search data --fetch --data-dir /tmp/x`", "--val-fraction",
                  "`apt-get install dataset-fashion-mnist`"):
        assert any(whole in line for line in lines), whole
    assert " ".join(text.split()) == " ".join(f"error: {message}".split())
