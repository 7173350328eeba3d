"""The statistics' charts: SVG drawn on the server by pygal, made fit for the page.

pygal writes a `<style>` and a `<script>` into every chart; the site's policy allows
neither inline (intake.web.security). Each chart is therefore cleaned: no script (pygal's
own `js` list is empty, so nothing is ever fetched, and its inline configuration script is
dropped), no `style` element or attribute, and a `<title>` and `<desc>` with `role="img"`
for screen readers. The chart style sheet pygal would have inlined is served once from
this site (`chart_css`, at /stats/charts.css), scoped to `.pygal-chart`.

A suppressed count is None: pygal draws no bar for it.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from functools import cache, lru_cache

import pygal
from pygal.style import Style

# pygal appends a finder for its map plugins (pygal.maps.*, unused here) to sys.meta_path;
# its old find_module interface makes every later failed import warn (ImportWarning).
sys.meta_path[:] = [finder for finder in sys.meta_path
                    if type(finder).__name__ != "PluginImportFixer"]

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
_SVG = f"{{{SVG_NAMESPACE}}}"
ET.register_namespace("", SVG_NAMESPACE)
ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
_RULE = re.compile(r"([^{}]*)\{([^{}]*)\}")
# Colours told apart with the common colour blindnesses (Okabe and Ito), then greys.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000", "#6B6B6B", "#9C9C9C", "#C4C4C4", "#3D3D3D")
STYLE = Style(background="white", plot_background="white", foreground="#1a1a1a",
              foreground_strong="#1a1a1a", foreground_subtle="#555555",
              font_family="system-ui, sans-serif", label_font_size=13,
              major_label_font_size=13, legend_font_size=14, value_font_size=12,
              colors=PALETTE)
_SETTINGS = {"js": [], "disable_xml_declaration": True, "no_prefix": True,
             "style": STYLE, "width": 800, "height": 520, "legend_at_bottom": True,
             "legend_at_bottom_columns": 1, "truncate_legend": -1, "x_label_rotation": 40,
             "show_y_guides": True, "print_values": False, "tooltip_border_radius": 0}

Series = tuple[tuple[str, tuple[float | None, ...]], ...]


def _chart(kind: str, periods: Sequence[str], series: Series) -> pygal.graph.graph.Graph:
    chart_type = {"stacked": pygal.StackedBar, "bars": pygal.Bar}[kind]
    chart = chart_type(**_SETTINGS)
    chart.x_labels = list(periods)
    for label, values in series:
        chart.add(label, list(values))
    return chart


@lru_cache(maxsize=256)
def chart_svg(chart_id: str, kind: str, periods: tuple[str, ...], series: Series,
              title: str, description: str) -> str:
    """One chart as inline SVG markup: bars per period for each series (`kind` "stacked" or
    "bars"), titled and described for screen readers."""
    raw = _chart(kind, periods, series).render(is_unicode=True)
    return _cleaned(raw, chart_id, title, description)


def _cleaned(raw: str, chart_id: str, title: str, description: str) -> str:
    root = ET.fromstring(raw)  # noqa: S314  # pygal's own output, from our own numbers
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in (f"{_SVG}script", f"{_SVG}style"):
                parent.remove(child)
            elif child.get("class", "").endswith("tooltip-overlay"):
                parent.remove(child)  # shown by pygal's script only, which never runs
    for child in list(root):
        if child.tag == f"{_SVG}title":
            root.remove(child)  # pygal's "Pygal" when a chart has no title of its own
    for element in root.iter():
        element.attrib.pop("style", None)
    root.set("id", chart_id)
    root.set("role", "img")
    root.set("aria-labelledby", f"{chart_id}-title {chart_id}-desc")
    root.set("focusable", "false")
    desc = ET.Element(f"{_SVG}desc", {"id": f"{chart_id}-desc"})
    desc.text = description
    heading = ET.Element(f"{_SVG}title", {"id": f"{chart_id}-title"})
    heading.text = title
    root.insert(0, desc)
    root.insert(0, heading)
    return ET.tostring(root, encoding="unicode")


@cache
def chart_css() -> str:
    """The style sheet pygal inlines into a chart, with every rule scoped to `.pygal-chart`
    (series colours for as many series as the widest chart has)."""
    series = tuple((str(number), (1.0,)) for number in range(len(PALETTE)))
    raw = _chart("stacked", ("x",), series).render(is_unicode=True)
    root = ET.fromstring(raw)  # noqa: S314  # pygal's own output
    text = "".join(element.text or "" for element in root.iter(f"{_SVG}style"))
    rules = []
    for selectors, declarations in _RULE.findall(text):
        scoped = ",".join(f".pygal-chart {selector.strip()}".rstrip()
                          for selector in selectors.split(","))
        rules.append(f"{scoped}{{{declarations}}}")
    return "\n".join(rules) + "\n"
