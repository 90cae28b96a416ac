#!/usr/bin/env bash
# Builds the collection tarball, installs it into an empty path, and checks that the
# installed copy documents its plugins and roles.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/build/collection"
rm -rf "$out"
mkdir -p "$out/install"
ansible-galaxy collection build --force --output-path "$out" "$root"
tarball="$(ls "$out"/homelab-mlflow_k3s-*.tar.gz)"
# Only the freshly installed copy may be found, not this checkout.
export ANSIBLE_COLLECTIONS_PATH="$out/install"
ansible-galaxy collection install --offline --no-deps --force -p "$out/install" "$tarball"
for filter in postgres_uri k8s_secret_data; do
  ansible-doc -t filter "homelab.mlflow_k3s.$filter" | grep -q "homelab.mlflow_k3s.$filter"
done
for role in "$root"/roles/*/; do
  ansible-doc -t role "homelab.mlflow_k3s.$(basename "$role")" >/dev/null
done
echo "built and installed $(basename "$tarball")"
