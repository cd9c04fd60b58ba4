"""mkdocs hooks for redkit's docs site (mkdocs 1.4+, Debian 12's).

* Code comes from the compiled examples. In a page, a fenced block whose only line is
  `--8<-- "examples/snippets/queue.cpp:flow"` shows the lines between the two `//! [flow]`
  markers of that file (without a name after the colon: the whole file from its first
  `#include`). A missing file or section fails the build, and so does a C++ block with code
  typed into the page: the pages cannot drift from what the tests compile and run.
* The API reference is Doxygen's HTML, published under api/ (REDKIT_DOXYGEN_OUT names the
  folder doxygen wrote, with its api/ inside; scripts/docs runs doxygen first).
* The benchmark's plot and the board's screenshot are published from where the repository keeps
  them, under img/.
"""

import os
import re

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
IMAGES = {"img/scaling.svg": "bench/scaling.svg", "img/async.svg": "bench/async.svg",
          "img/async-p99.svg": "bench/async-p99.svg", "img/board.png": "tools/redkit-queue/board.png"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$')
MARKER = re.compile(r"^\s*//! \[([\w-]+)\]\s*$")


def snippet(path, name, page):
    full = os.path.join(ROOT, path)
    if not os.path.isfile(full):
        raise PluginError(f"{page}: snippet file {path} does not exist")
    with open(full, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if name is None:
        start = next((i for i, line in enumerate(lines) if line.startswith("#include")), 0)
        body = lines[start:]
    else:
        marks = [i for i, line in enumerate(lines) if MARKER.match(line) and MARKER.match(line).group(1) == name]
        if len(marks) != 2:
            raise PluginError(f"{page}: {path} has {len(marks)} '//! [{name}]' markers, not 2")
        body = lines[marks[0] + 1 : marks[1]]
    body = [line for line in body if not MARKER.match(line)]
    indent = min((len(line) - len(line.lstrip()) for line in body if line.strip()), default=0)
    text = "\n".join(line[indent:] for line in body).strip("\n")
    if not text:
        raise PluginError(f"{page}: section '{name}' of {path} is empty")
    return text


def on_page_markdown(markdown, page, config, files):
    where = page.file.src_uri

    def expand(match):
        lang, content = match.group(1), match.group(2)
        lines = [line for line in content.splitlines() if line.strip()]
        refs = [SNIPPET.match(line.strip()) for line in lines]
        if lines and all(refs):
            code = "\n\n".join(snippet(r.group(1), r.group(2), where) for r in refs)
            return f"```{lang}\n{code}\n```"
        if any(refs):
            raise PluginError(f"{where}: a block mixes snippet references with typed lines")
        if lang in ("cpp", "c++"):
            raise PluginError(f"{where}: C++ typed into the page ({content.splitlines()[0][:60]!r}...): "
                              "put it in an example and show it with --8<--")
        return match.group(0)

    return FENCE.sub(expand, markdown)


def on_files(files, config):
    site = config["site_dir"]
    out = os.environ.get("REDKIT_DOXYGEN_OUT", os.path.join(ROOT, "build", "docs", "doxygen"))
    if not os.path.isfile(os.path.join(out, "api", "index.html")):
        raise PluginError(f"no API reference in {out}/api: run scripts/docs (it runs doxygen first)")
    for folder, _, names in os.walk(os.path.join(out, "api")):
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), out)
            files.append(File(rel, out, site, config["use_directory_urls"]))
    for dest, source in IMAGES.items():
        f = File(dest, ROOT, site, config["use_directory_urls"])
        f.abs_src_path = os.path.join(ROOT, source)
        files.append(f)
    return files
