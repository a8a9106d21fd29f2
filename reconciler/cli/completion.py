"""`ramenctl completion bash|zsh`: shell completion generated from the argument parser itself."""

from __future__ import annotations

import argparse
from typing import TextIO

EPILOG = """\
examples:
  source <(ramenctl completion bash)          # in ~/.bashrc
  ramenctl completion zsh > "${fpath[1]}/_ramenctl"
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("completion", help="print a shell completion script", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=("bash", "zsh"))


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def _options(p: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in p._actions for o in a.option_strings if o.startswith("--"))


def words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Completion words by command path ("" is the top level, "doctor cluster" a nested command)."""
    out: dict[str, list[str]] = {}

    def walk(path: str, p: argparse.ArgumentParser) -> None:
        subs = _subparsers(p)
        choices = [c for a in p._actions if not a.option_strings and a.choices and not subs
                   for c in a.choices]
        out[path] = sorted(subs) + [str(c) for c in choices] + _options(p)
        for name, sp in subs.items():
            walk(f"{path} {name}".strip(), sp)

    walk("", parser)
    return out


def bash(parser: argparse.ArgumentParser) -> str:
    cases = "\n".join(f'        "{k}") opts="{" ".join(v)}" ;;' for k, v in words(parser).items())
    # The command path is the leading words that are not options, so `ramenctl doctor cluster --k<TAB>`
    # completes the options of `doctor cluster`; file names are offered for flag values.
    return f"""# bash completion for ramenctl
_ramenctl() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path="" w opts
    for w in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case "$w" in -*) break ;; *) path="${{path:+$path }}$w" ;; esac
    done
    case "$path" in
{cases}
        *) opts="" ;;
    esac
    if [[ "$cur" == -* || -n "$opts" ]]; then
        COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
    fi
    [[ ${{#COMPREPLY[@]}} -eq 0 ]] && COMPREPLY=( $(compgen -f -- "$cur") )
}}
complete -o filenames -F _ramenctl ramenctl
"""


def zsh(parser: argparse.ArgumentParser) -> str:
    # zsh runs bash completion functions through bashcompinit.
    return "#compdef ramenctl\nautoload -U +X bashcompinit && bashcompinit\n" + bash(parser)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO) -> int:
    out.write(bash(parser) if args.shell == "bash" else zsh(parser))
    return 0
