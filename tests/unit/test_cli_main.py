"""ramenctl as a whole: help with examples, shell completion, and no traceback for bad input."""

from __future__ import annotations

import subprocess

import pytest

from reconciler.cli import main as cli
from reconciler.cli.completion import words


@pytest.mark.parametrize("argv", [[], ["status"], ["failover"], ["relocate"], ["cancel"], ["doctor", "cluster"],
                                  ["completion"], ["migrate"]])
def test_help_of_every_command_has_examples(argv, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "ramenctl" in out


def test_top_level_help_documents_the_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for line in ("0  success", "1  an action failed", "2  usage or configuration error", "3  timed out"):
        assert line in out


def test_no_command_prints_help_and_exits_2(capsys) -> None:
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_completion_words_follow_the_parser() -> None:
    w = words(cli.build_parser())
    assert {"status", "failover", "relocate", "cancel", "doctor", "migrate", "render", "completion"} <= set(w[""])
    assert "cluster" in w["doctor"] and "s3" in w["doctor"]
    assert "--not-healthy" in w["status"] and "--to" in w["failover"]
    assert w["completion"][:2] == ["bash", "zsh"]


def _complete(script: str, *line: str) -> list[str]:
    cmd = (f"{script}\nCOMP_WORDS=({' '.join(repr(x) for x in line)}); COMP_CWORD={len(line) - 1}; _ramenctl; "
           'printf "%s\\n" "${COMPREPLY[@]}"')
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout.split()


def test_bash_completion_completes_commands_and_their_options(capsys) -> None:
    assert cli.main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert _complete(script, "ramenctl", "st") == ["status"]
    assert _complete(script, "ramenctl", "doctor", "cl") == ["cluster"]
    assert _complete(script, "ramenctl", "status", "--not") == ["--not-healthy"]
    assert cli.main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out.startswith("#compdef ramenctl")


def test_argparse_errors_exit_2_without_traceback(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["status", "-o", "xml"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
