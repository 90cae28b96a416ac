"""Offline stand-in for the get-pip.py bootstrap script ansible-test downloads.

ansible-test creates its sanity virtualenvs without pip and fetches get-pip.py from a
host we cannot reach. This does the same job with what Python ships: ensurepip installs
the bundled pip, which then installs the requested pins from the package index.
Called like get-pip.py: [get-pip options] [pip install arguments].
"""
import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
# ansible-test clears the pip environment; keep trusting the system CA store (which holds
# any local CA added with update-ca-certificates) when there is one.
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
if os.path.exists(SYSTEM_CA):
    args = ["--cert", SYSTEM_CA] + args
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + args)
