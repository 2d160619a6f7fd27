"""Text on the pages meets WCAG 2.2 AA contrast (4.5:1), computed from candor.css itself.

The header's role label was the page's muted grey on the dark header (about 2:1).
"""

from __future__ import annotations

import re

import pytest

from candor.server.state import STATIC

CSS = (STATIC / "candor.css").read_text()
AA = 4.5


def rules(css: str) -> dict[str, dict[str, str]]:
    """selector -> its declarations, for the plain rules of the sheet (media queries'
    insides are ignored: the colours live outside them)."""
    found: dict[str, dict[str, str]] = {}
    text = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
        declarations = {}
        for part in body.split(";"):
            if ":" in part:
                name, value = part.split(":", 1)
                declarations[name.strip()] = value.strip()
        for selector in selectors.split(","):
            found.setdefault(" ".join(selector.split()), {}).update(declarations)
    return found


RULES = rules(CSS)


def colour(selector: str, prop: str) -> tuple[float, float, float]:
    value = RULES[selector][prop]
    variables = RULES[":root"]
    while (var := re.fullmatch(r"var\((--[\w-]+)\)", value)) is not None:
        value = variables[var.group(1)]
    return hex_colour(value)


def hex_colour(value: str) -> tuple[float, float, float]:
    match = re.fullmatch(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})", value.strip())
    assert match, f"not a hex colour: {value!r}"
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    red, green, blue = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return red, green, blue


def luminance(rgb: tuple[float, float, float]) -> float:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in rgb)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(one: tuple[float, float, float], two: tuple[float, float, float]) -> float:
    light, dark = sorted((luminance(one), luminance(two)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_formula_matches_known_ratios() -> None:
    assert contrast(hex_colour("#000"), hex_colour("#fff")) == pytest.approx(21)
    assert contrast(hex_colour("#777777"), hex_colour("#ffffff")) == pytest.approx(4.48, abs=0.01)


# (what, foreground (selector, property), background (selector, property))
PAIRS = [
    ("header role label", (".top small", "color"), (".top", "background")),
    ("header text", (".top", "color"), (".top", "background")),
    ("muted text", (":root", "--muted"), (":root", "--paper")),
    ("footer", (":root", "--muted"), (":root", "--wash")),
    ("links", (":root", "--accent"), (":root", "--paper")),
    ("error box", (":root", "--bad"), ("p.error", "background")),
    ("workspace banner", (":root", "--warn-ink"), (":root", "--warn-bg")),
    ("notice", (":root", "--ink"), (".notice", "background")),
    ("buttons", ("button, .button", "color"), (":root", "--accent")),
    ("badges", (".badge", "color"), (":root", "--ok")),
]


# Where a rule for the exact element is missing, the colour comes from the next rule the
# cascade would use (the role label's was the page's `small` rule, muted ink).
FALLBACKS = {".top small": ".who small", ".who small": "small", "button, .button": "button"}


def _lookup(selector: str, prop: str) -> tuple[float, float, float]:
    while prop not in RULES.get(selector, {}) and selector in FALLBACKS:
        selector = FALLBACKS[selector]
    if prop.startswith("--"):
        return hex_colour(RULES[selector][prop])
    return colour(selector, prop)


@pytest.mark.parametrize(("what", "foreground", "background"), PAIRS, ids=[p[0] for p in PAIRS])
def test_text_meets_aa(what: str, foreground: tuple[str, str], background: tuple[str, str]) -> None:
    ratio = contrast(_lookup(*foreground), _lookup(*background))
    assert ratio >= AA, f"{what}: {ratio:.2f}:1, below WCAG AA's {AA}:1"


def test_the_role_label_is_not_dimmed_below_its_colour() -> None:
    # An opacity would blend the label into the header whatever its colour.
    assert "opacity" not in RULES.get(".who small", {})
    assert "opacity" not in RULES.get(".top small", {})
