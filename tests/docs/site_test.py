#!/usr/bin/env python3
"""Checks the built docs site (scripts/docs --check runs it after a strict build).

1. The README's quick start is examples/quickstart.cpp (the example CTest compiles and runs), and
   each of its other C++ blocks is a `//! [name]` section of examples/snippets/*.cpp (compiled and
   run as CTest examples too).
2. Headless Chromium (Debian's chromium and chromium-driver, through Selenium) opens every page
   of the guide: each renders (a title, an h1, its text, no error in the browser's console), and
   every link on it to the site resolves, anchors included.
3. The API reference lists every public class and struct of the headers, each with a sentence,
   and every free function of namespace redkit with a sentence.

Usage: site_test.py <site dir>. Exits 1 with a list of what is wrong.
"""

import functools
import http.server
import os
import re
import socketserver
import sys
import threading
import urllib.parse
from html.parser import HTMLParser

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
problems = []


def problem(text):
    problems.append(text)
    print("  FAIL " + text)


def check_readme_quick_start():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"^## Quick start\n.*?^```cpp\n(.*?)^```$", readme, re.S | re.M)
    if not m:
        return problem("README.md: no C++ block under '## Quick start'")
    lines = open(os.path.join(ROOT, "examples", "quickstart.cpp"), encoding="utf-8").read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#include"))
    if m.group(1).rstrip("\n") != "\n".join(lines[start:]).rstrip("\n"):
        problem("README.md: the quick start differs from examples/quickstart.cpp (from its first #include)")
    elif len(m.group(1).splitlines()) >= 60:
        problem("README.md: the quick start has 60 lines or more")
    else:
        print("  ok   README quick start == examples/quickstart.cpp")


def snippet_sections():
    """Every `//! [name]` section of examples/snippets/*.cpp, dedented, as one string each."""
    out = []
    folder = os.path.join(ROOT, "examples", "snippets")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".cpp"):
            continue
        text = open(os.path.join(folder, name), encoding="utf-8").read()
        for m in re.finditer(r"^[ \t]*//! \[([\w-]+)\]\n(.*?)^[ \t]*//! \[\1\]$", text, re.S | re.M):
            lines = m.group(2).rstrip("\n").splitlines()
            indent = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
            out.append("\n".join(x[indent:] for x in lines))
    return out


def check_readme_other_blocks():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"^```cpp\n(.*?)^```$", readme, re.S | re.M)[1:]  # the first is the quick start
    sections = snippet_sections()
    for b in blocks:
        if b.rstrip("\n") not in sections:
            problem("README.md: a C++ block is no //! [name] section of examples/snippets/*.cpp: " + b.splitlines()[0])
        else:
            print("  ok   README block == a snippet: " + b.splitlines()[0])


class Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


@functools.lru_cache(maxsize=None)
def ids_of(path):
    parser = Ids()
    parser.feed(open(path, encoding="utf-8", errors="replace").read())
    return parser.ids


def target_ok(site, href, where, anchors=True):
    """Checks a link into the site (href: its path, from the site's root). Anchors are checked on
    links from the guide and to it; within the reference they are Doxygen's own."""
    url = urllib.parse.urlsplit(href)
    if not url.path.startswith("/"):
        return
    path = os.path.join(site, urllib.parse.unquote(url.path).lstrip("/"))
    if os.path.isdir(path):
        path = os.path.join(path, "index.html")
    if not os.path.isfile(path):
        return problem(f"{where}: link to {url.path} (no such file)")
    if anchors and url.fragment and path.endswith(".html") and urllib.parse.unquote(url.fragment) not in ids_of(path):
        problem(f"{where}: link to {url.path}#{url.fragment} (no such anchor)")


def public_types():
    """Classes and structs at namespace scope in the public headers, outside namespace detail."""
    names = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "include", "redkit")):
        if "/detail" in folder or "/core" in folder or "/impl" in folder:
            continue
        for f in files:
            depth = 0
            for line in open(os.path.join(folder, f), encoding="utf-8"):
                if re.match(r"^namespace (redkit::)?detail \{", line):
                    depth += 1
                elif depth and re.match(r"^\}\s*// namespace (redkit::)?detail", line):
                    depth -= 1
                elif not depth:
                    m = re.match(r"^(?:template <[^>]*>\s*)?(?:class|struct) (\w+)(?!:)(?: final)?\s*(?::[^;]*)?\{", line)
                    if m:
                        names.add(m.group(1))
    return names


def check_api(driver, base):
    driver.get(base + "api/annotated.html")
    rows = driver.execute_script(
        "return [...document.querySelectorAll('table.directory tr')].map(r => ["
        "(r.querySelector('td.entry a.el') || {}).textContent || '',"
        "(r.querySelector('td.entry span.icon') || {}).textContent || '',"
        "(r.querySelector('td.desc') || {}).textContent || ''])")
    listed = {}
    for name, icon, desc in rows:
        if icon in ("C",) and name:
            listed[name.split("<")[0].strip()] = desc.strip()
    for name, desc in sorted(listed.items()):
        if not re.search(r"\w+ \w+", desc):
            problem(f"API reference: class {name} has no sentence ({desc!r})")
    missing = sorted(n for n in public_types() if n not in listed)
    if missing:
        problem("API reference: public types not listed: " + ", ".join(missing))
    driver.get(base + "api/namespaceredkit_1_1v0.html")
    funcs = driver.execute_script(
        "const out = [];"
        "for (const r of document.querySelectorAll('tr[class^=\"memitem:\"]')) {"
        "  const table = r.closest('table.memberdecls');"
        "  const h = table && table.querySelector('h2');"
        "  if (!h || !/Functions/.test(h.textContent) || r.querySelector('td.memTemplParams')) continue;"
        "  const next = r.nextElementSibling;"
        "  const desc = next && next.className.startsWith('memdesc:') ? next.textContent.trim() : '';"
        "  out.push([(r.querySelector('td.memItemRight') || r).textContent.trim(), desc]);"
        "}"
        "return out;")
    if not funcs:
        problem("API reference: namespace redkit lists no free function")
    for sig, desc in funcs:
        if not re.search(r"\w+ \w+", desc):
            problem(f"API reference: function {sig[:60]} has no sentence")
    print(f"  ok   API reference: {len(listed)} classes ({len(public_types())} in the headers), "
          f"{len(funcs)} free functions checked for a sentence")


def main():
    site = os.path.abspath(sys.argv[1])
    check_readme_quick_start()
    check_readme_other_blocks()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=site)
    server = socketserver.TCPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        pages = sorted(f for f in os.listdir(site) if f.endswith(".html") and f != "404.html")
        api_pages = sorted("api/" + f for f in os.listdir(os.path.join(site, "api")) if f.endswith(".html"))
        for page in pages + api_pages:
            driver.get(base + page)
            info = driver.execute_script(
                "return {title: document.title, h1: (document.querySelector('h1') || {}).textContent || '',"
                " text: (document.querySelector('article, div.contents') || document.body).innerText.length,"
                " links: [...document.querySelectorAll('a[href]')].map(a => a.href)}")
            errors = [e["message"] for e in driver.get_log("browser")
                      if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
            guide = not page.startswith("api/")
            if not info["title"] or (guide and (not info["h1"].strip() or info["text"] < 200)) or info["text"] < 1:
                problem(f"{page}: does not render (title {info['title']!r}, h1 {info['h1'][:40]!r}, {info['text']} chars)")
            for e in errors:
                problem(f"{page}: browser console: {e[:160]}")
            for href in set(info["links"]):
                if href.startswith(base):
                    target_ok(site, "/" + href[len(base):], page, anchors=guide or not href[len(base):].startswith("api/"))
        print(f"  ok   opened {len(pages)} guide pages and {len(api_pages)} reference pages; links followed")
        check_api(driver, base)
    finally:
        driver.quit()
        server.shutdown()
    if problems:
        print(f"docs check: {len(problems)} problem(s)")
        sys.exit(1)
    print("docs check: ok")


if __name__ == "__main__":
    main()
