# A Debian 12 host for Molecule: systemd as PID 1 without --privileged.
# Debian's containerd is installed but masked: the k3s stand-in runs it on k3s's
# socket, as real k3s runs its embedded containerd.
ARG ROOTFS
FROM ${ROOTFS}
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      systemd systemd-sysv dbus iproute2 procps sudo curl \
      containerd \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && systemctl mask containerd.service systemd-udevd.service systemd-udevd-kernel.socket systemd-udevd-control.socket \
      systemd-modules-load.service getty.target console-getty.service \
      sys-kernel-config.mount sys-kernel-debug.mount systemd-remount-fs.service \
 && rm -f /etc/machine-id && touch /etc/machine-id
ENV container=docker
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
