#!/usr/bin/env bash
# Optional and slow (`make cross-arm64`, not part of `make test`): one real arm64 build of
# the MLflow image on an x86_64 machine, the way a Raspberry Pi build host would make it.
#   1. Debian's qemu-user-static registers qemu-aarch64 with binfmt_misc (flag F: it works
#      inside containers), so arm64 programs run here, emulated.
#   2. An arm64 Debian 12 root file system (debootstrap --arch=arm64) becomes the arm64
#      Python base image, as tests/images/build.sh makes the x86_64 one.
#   3. The mlflow_image role renders its build context (its own validate, context and
#      context_write tasks), and the Docker Engine builds it for linux/arm64.
#   4. The image is checked: Docker reports arm64, `mlflow server --help` runs in it (under
#      qemu), and real containerd imports it with --platform linux/arm64 and refuses it
#      with --platform linux/amd64.
# Prints the figures: seconds per step and the image's size.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prefix="mlflow-k3s-test"
suite="${TEST_IMAGES_SUITE:-bookworm}"
log() { printf '[cross-arm64] %s\n' "$*" >&2; }
now() { date +%s; }
declare -A took

bash "$here/build.sh"  # Docker, debootstrap, the x86_64 images (for containerd's host)

t0=$(now)
if ! grep -qs enabled /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if ! command -v update-binfmts >/dev/null 2>&1 || [ ! -x /usr/bin/qemu-aarch64-static ]; then
    log "installing Debian's qemu-user-static and binfmt-support"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support >/dev/null
  fi
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || { log "qemu-aarch64 is not registered with flag F (needed inside containers)"; exit 1; }
took[qemu]=$(( $(now) - t0 ))

base="$prefix/python-base:$suite-arm64"
t0=$(now)
if ! docker image inspect "$base" >/dev/null 2>&1; then
  mirror="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)"
  [ -n "$mirror" ] || mirror="$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1)"
  dir="$(mktemp -d)"
  log "debootstrap --arch=arm64 $suite"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$dir" "$mirror" >"$dir.log" 2>&1 || { tail -n 20 "$dir.log" >&2; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  ctx="$(mktemp -d)"
  tar -C "$dir" -c . > "$ctx/rootfs.tar"
  mkdir -p "$ctx/ca"
  find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$ctx/ca/" \; 2>/dev/null || true
  cat > "$ctx/Dockerfile" <<'EOF'
FROM scratch
ADD rootfs.tar /
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
EOF
  DOCKER_BUILDKIT=0 docker build -q --platform linux/arm64 -t "$base" "$ctx" >/dev/null
  rm -rf "$dir" "$dir.log" "$ctx"
fi
took[base]=$(( $(now) - t0 ))

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/render.yml" <<'EOF'
- hosts: localhost
  gather_facts: false
  vars:
    mlflow_image_build_hosts: [localhost]
    __mlflow_image_build_host: localhost
  tasks:
    - ansible.builtin.include_role:
        name: homelab.mlflow_k3s.mlflow_image
        tasks_from: "{{ entry }}"
      loop: [validate, context, context_write]
      loop_control:
        loop_var: entry
    - ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ __mlflow_image_context_dir }} {{ mlflow_image_ref }}\n"
        mode: "0644"
EOF
base_id="$(docker image inspect -f '{{.Id}}' "$base")"
PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg" ansible-playbook -i localhost, -c local "$work/render.yml" \
  -e ansible_python_interpreter="$root/.venv/bin/python" -e out="$work/out" -e mlflow_image_build_dir="$work/build" \
  -e mlflow_image_base="$base" -e mlflow_image_name=localhost/mlflow-k3s-cross/mlflow \
  -e "{\"__mlflow_image_base_ids\": {\"arm64\": \"$base_id\"}}" -e "mlflow_image_flavor=${MLFLOW_IMAGE_FLAVOR:-full}" >"$work/render.log" \
  || { tail -n 30 "$work/render.log" >&2; exit 1; }
read -r context ref < "$work/out"

t0=$(now)
log "docker build --platform linux/arm64 $ref (pip under qemu: slow)"
DOCKER_BUILDKIT=0 docker build -q --platform linux/arm64 -t "$ref" "$context" >/dev/null
took[build]=$(( $(now) - t0 ))

arch="$(docker image inspect -f '{{.Architecture}}' "$ref")"
[ "$arch" = arm64 ] || { log "the image is $arch, not arm64"; exit 1; }
t0=$(now)
docker run --rm --platform linux/arm64 --entrypoint /bin/sh "$ref" -c 'uname -m; mlflow server --help >/dev/null && echo mlflow-ok' > "$work/run"
if ! grep -qx aarch64 "$work/run" || ! grep -qx mlflow-ok "$work/run"; then cat "$work/run" >&2; exit 1; fi
took[run]=$(( $(now) - t0 ))

# Real containerd (Debian's, as in the Molecule hosts): the role's import argv per node.
docker save "$ref" -o "$work/image.tar"
node="$prefix-cross-containerd-$$"
docker run -d --name "$node" --cap-add SYS_ADMIN --cap-add MKNOD --cap-add CHOWN --cap-add DAC_OVERRIDE \
  --cap-add FOWNER --cap-add SETUID --cap-add SETGID --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  -v "$work:/x:ro" --entrypoint sleep "$prefix/systemd-host:$suite" 600 >/dev/null
trap 'docker rm -f "$node" >/dev/null 2>&1; rm -rf "$work"' EXIT
docker exec "$node" sh -c '(containerd >/tmp/containerd.log 2>&1 &); for i in $(seq 30); do ctr version >/dev/null 2>&1 && break; sleep 1; done'
if docker exec "$node" ctr -n k8s.io images import --platform linux/amd64 /x/image.tar >/dev/null 2>&1; then
  log "containerd imported an arm64 image for linux/amd64"; exit 1
fi
docker exec "$node" ctr -n k8s.io images import --platform linux/arm64 /x/image.tar >/dev/null
docker exec "$node" ctr -n k8s.io images ls | grep -q "linux/arm64" || { log "not imported for linux/arm64"; exit 1; }

size="$(docker image inspect -f '{{.Size}}' "$ref")"
printf 'arm64 MLflow image %s (%s flavor) built on %s\n' "$ref" "${MLFLOW_IMAGE_FLAVOR:-full}" "$(uname -m)"
printf '  qemu setup %4d s | arm64 base %4d s | build under qemu %5d s | mlflow --help under qemu %3d s\n' \
  "${took[qemu]}" "${took[base]}" "${took[build]}" "${took[run]}"
printf '  size %d MB (docker image inspect); containerd: imported for linux/arm64, refused for linux/amd64\n' $(( size / 1000000 ))
