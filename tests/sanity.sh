#!/usr/bin/env bash
# ansible-test sanity, offline. ansible-test needs the collection at
# .../ansible_collections/homelab/mlflow_k3s, so the tracked files are copied there.
set -euo pipefail
# The sanity tests include a shell-script linter; install it when we can.
if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/build/sanity/ansible_collections/homelab/mlflow_k3s"
rm -rf "$dest"
mkdir -p "$dest"
cd "$root"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$dest"
cd "$dest"
git init -q && git add -A  # ansible-test lists the files to check through git
# Provide the pip bootstrap script ansible-test would download (see get_pip_offline.py).
pip_version="$(python3 -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
from ansible_test._internal.host_configs import NativePythonConfig as C
print(g(C())["pip"])')"
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
for v in $pip_version; do cp "$root/tests/get_pip_offline.py" "$cache/get_pip_${v//./_}.py"; done
ansible-test sanity --local --python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "$@"
