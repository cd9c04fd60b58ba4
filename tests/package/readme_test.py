#!/usr/bin/env python3
"""Runs the install commands of the README and the docs as written (CTest: package_readme,
package_tls_recipe).

The blocks run are the ones marked `<!-- tested: NAME -->` just above them:
  readme      README.md's `install` (clone, configure, build, install), `consumer` (a CMake
              project whose CMakeLists.txt is the block, building examples/quickstart.cpp as
              my_service) and `pkg-config` (the same program built by the block's c++ line)
  tls-recipe  docs/pages/production.md's recipe, then a find_package consumer with no hint that
              must report TLS on
Substitutions, and only these: `<redkit's git URL>` is a clone of this checkout's HEAD (so only
committed changes are tested), `/opt/...` prefixes go under the scratch folder, `apt-get install`
lines are checked with dpkg-query instead of run, and `service.cpp` is the quick start. Each
program runs against a throw-away redis-server on a private unix socket.

Usage: readme_test.py readme|tls-recipe SOURCE_DIR WORK_DIR
"""

import os
import re
import shutil
import subprocess
import sys
import time

which, source, work = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])


def block(path, name):
    text = open(os.path.join(source, path), encoding="utf-8").read()
    m = re.search(r"<!-- tested: " + re.escape(name) + r"\b[^>]*-->\n```\w*\n(.*?)^```$", text, re.S | re.M)
    if not m:
        sys.exit(f"{path}: no block marked '<!-- tested: {name} -->'")
    return m.group(1)


def shell(script, cwd, env=None):
    lines = []
    for line in script.replace("\\\n", " ").splitlines():
        if line.strip().startswith("apt-get install"):
            packages = line.split("apt-get install", 1)[1].split()
            missing = [p for p in packages if subprocess.run(["dpkg-query", "-W", p], capture_output=True).returncode]
            if missing:
                sys.exit(f"packages the docs install are missing here: {missing}")
            continue
        if line.strip().startswith("git clone"):
            line = line.replace("<redkit's git URL>", f"--quiet --no-local {source}")
        lines.append(re.sub(r"(?<![\w.-])/opt/(redkit[\w-]*)", work + r"/opt/\1", line))
    script = "set -euo pipefail\n" + "\n".join(lines)
    print("+ " + script.replace("\n", "\n+ "), flush=True)
    subprocess.run(["bash", "-c", script], cwd=cwd, check=True, env=env)


def run_against_redis(programs, expect):
    sock = os.path.join(work, "redis.sock")
    subprocess.run(["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--save", "",
                    "--appendonly", "no", "--daemonize", "yes", "--pidfile", os.path.join(work, "redis.pid"),
                    "--dir", work, "--logfile", os.path.join(work, "redis.log")], check=True)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        for program in programs:
            out = subprocess.run([program], env=dict(os.environ, REDIS_URL="unix://" + sock), capture_output=True,
                                 text=True, timeout=60)
            print(f"{program}:\n{out.stdout}{out.stderr}", flush=True)
            if out.returncode != 0 or not re.search(expect, out.stdout, re.S):
                sys.exit(f"{program} did not print /{expect}/ (exit {out.returncode})")
    finally:
        subprocess.run(["redis-cli", "-s", sock, "shutdown", "nosave"], capture_output=True)


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
quickstart = os.path.join(source, "examples", "quickstart.cpp")
service = os.path.join(work, "service")
os.makedirs(service)
shutil.copy(quickstart, os.path.join(service, "main.cpp"))
shutil.copy(quickstart, os.path.join(service, "service.cpp"))

if which == "readme":
    shell(block("README.md", "install"), work)
    with open(os.path.join(service, "CMakeLists.txt"), "w") as f:
        f.write("cmake_minimum_required(VERSION 3.16)\nproject(my_service CXX)\nadd_executable(my_service main.cpp)\n")
        f.write(block("README.md", "consumer"))
    prefix = os.path.join(work, "opt", "redkit")
    shell(f"cmake -S . -B build -DCMAKE_PREFIX_PATH={prefix}\ncmake --build build", service)
    shell(block("README.md", "pkg-config"), service)
    run_against_redis([os.path.join(service, "build", "my_service"), os.path.join(service, "service")],
                      r"cached Desk lamp at 24\.5.*call 101: 429 Too Many Requests.*job [0-9]+: completed")
elif which == "tls-recipe":
    # the recipe starts in the directory that holds the clone
    subprocess.run(["git", "clone", "--quiet", "--no-local", source, os.path.join(work, "redkit")], check=True)
    if os.path.isdir(os.path.join(source, ".deps", "hiredis-1.2")):  # already fetched: no second download
        shutil.copytree(os.path.join(source, ".deps", "hiredis-1.2"), os.path.join(work, "redkit", ".deps", "hiredis-1.2"),
                        symlinks=True)
    shell(block("docs/pages/production.md", "tls-recipe"), work)
    with open(os.path.join(service, "CMakeLists.txt"), "w") as f:
        f.write("cmake_minimum_required(VERSION 3.16)\nproject(tls_consumer CXX)\nfind_package(redkit CONFIG REQUIRED)\n"
                "add_executable(tls_consumer tls.cpp)\ntarget_link_libraries(tls_consumer PRIVATE redkit::redkit)\n")
    with open(os.path.join(service, "tls.cpp"), "w") as f:
        f.write("#include <redkit/redkit.hpp>\n#include <iostream>\n"
                "int main() {\n    redkit::client redis = redkit::default_client();\n"
                "    std::cout << redis.command<std::string>(\"PING\") << \" tls: \""
                " << (redkit::tls_available ? \"on\" : \"off\") << '\\n';\n}\n")
    prefix = os.path.join(work, "opt", "redkit-tls")
    shell(f"cmake -S . -B build -DCMAKE_PREFIX_PATH={prefix}\ncmake --build build", service)
    run_against_redis([os.path.join(service, "build", "tls_consumer")], r"PONG tls: on")
else:
    sys.exit("usage: readme_test.py readme|tls-recipe SOURCE_DIR WORK_DIR")
print("ok")
