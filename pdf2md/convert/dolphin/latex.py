"""The LaTeX clean-ups upstream's Markdown writer applies to each generation's answers, made safe.

Dolphin writes commands its renderers do not know (`\\upmu`, `\\bm`, `\\varmathbb`), splits `\\infty` as
`\\in fty`, and numbers equations with `\\eqno`. Upstream's writers fix these with plain `str.replace`:
1.5 and v2 (bytedance/Dolphin 05f0df1 and 5270fee, utils/markdown_utils.py `replace_dict`, applied in
`_handle_text` and `_handle_formula`), 1.0 its own two (6043b32 utils/markdown_utils.py `_post_process`:
`\\eqno{(n)}` -> `\\tag{n}`, `_ {` -> `_{`). A plain replace also rewrites longer commands that begin with
the same letters (`\\bmod` -> `\\mathbf od`, `\\cdots` -> `\\cdot s`, `\\pmod` -> `\\pm od`,
`\\multicolumn` -> `\\mu lticolumn`): here each rename applies to the whole command only. Upstream's other
entries only add a space after a command (`\\leq` -> `\\leq `), which changes nothing TeX renders once the
command is matched whole, so they are not repeated.
"""

from __future__ import annotations

import re

RENAMES_1_5: dict[str, str] = {
    r"\upmu": r"\mu",
    r"\bm": r"\mathbf",
    r"\eqno": r"\quad",
    r"\varmathbb": r"\mathbb",
}
"""1.5 and v2: command -> the command upstream writes instead (`\\upmu` first, as upstream replaces it first)."""
_SPLIT_INFTY = re.compile(r"\\in fty")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_EQNO_1_0 = re.compile(r"\\eqno\{\((.*?)\)\}")
_SUBSCRIPT_SPACE = re.compile(r"_ \{")

LATEX_RULES = ("1.0", "1.5")
"""Profile.latex: '1.0' (1.0's two fixes) or '1.5' (the replacement table of 1.5 and v2)."""


def clean_latex(text: str, rules: str) -> str:
    """`text` with the clean-ups of the generation whose writer `rules` names."""
    if rules == "1.0":
        return _SUBSCRIPT_SPACE.sub("_{", _EQNO_1_0.sub(r"\\tag{\1}", text))
    if rules == "1.5":
        text = _SPLIT_INFTY.sub(r"\\infty", text)
        return _COMMAND.sub(lambda m: RENAMES_1_5.get(m.group(0), m.group(0)), text)
    raise ValueError(f"unknown LaTeX rules {rules!r} (one of {', '.join(LATEX_RULES)})")
